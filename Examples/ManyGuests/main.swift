// Boots N copies of the default guest (default 4) in this one process, each with its own in-memory
// console, asks each shell a different sum, and checks that every guest answers its own (and that no
// answer leaks into another's console). Pauses and resumes guest 0 along the way.
// Usage: rivet-example-many [N]   Exit status 0 when every guest answered and powered off cleanly.
import RivetKit
#if canImport(Glibc)
import Glibc
#endif

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 0 : 4
guard (1...16).contains(count) else { fputs("rivet-example-many: N must be 1 to 16\n", stderr); exit(2) }
/// Guest i computes 1000 * (i + 1) + 7 itself; the typed line holds only the expression.
func answer(_ i: Int) -> String { "answer-\(1000 * (i + 1) + 7)" }

do {
    let consoles = (0..<count).map { _ in MemoryConsole() }
    let machines = try consoles.map { try Machine(configuration: MachineConfiguration(), console: $0) }
    for m in machines { try m.start() }
    fputs("rivet-example-many: \(count) machines started\n", stderr)
    var prompts: [Int] = []
    for (i, console) in consoles.enumerated() {
        guard let p = console.waitForOutput("rivet:/# ", timeoutSeconds: 600) else {
            throw MachineError("guest \(i): no shell prompt")
        }
        prompts.append(p)
        console.send("echo answer-$((1000 * \(i + 1) + 7))\n")
    }
    machines[0].pause()
    guard machines[0].status.runState == .paused else { throw MachineError("guest 0 did not pause") }
    try machines[0].resume()
    for (i, console) in consoles.enumerated() {
        guard console.waitForOutput(answer(i) + "\r\n", after: prompts[i], timeoutSeconds: 300) != nil else {
            throw MachineError("guest \(i): no \(answer(i)) on its console")
        }
        let text = console.outputText
        for j in 0..<count where j != i && text.contains(answer(j)) {
            throw MachineError("guest \(i)'s console shows guest \(j)'s \(answer(j))")
        }
        print("guest \(i): \(answer(i))")
        console.send("poweroff\n")
    }
    for (i, m) in machines.enumerated() {
        let exit = m.waitForExit()
        guard exit == .powerOff(exitCode: 0) else { throw MachineError("guest \(i) ended with \(exit)") }
    }
    print("all \(count) guests answered and powered off")
} catch {
    fputs("rivet-example-many: \(error)\n", stderr)
    exit(1)
}
