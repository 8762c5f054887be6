// Boots the default guest (guest/build.sh; $RIVET_GUEST picks another) through RivetKit, types one
// shell command on its console, prints the answer, and powers the guest off from inside.
// Usage: rivet-example-ask [COMMAND...]   (default: uname -sr)
import RivetKit
#if canImport(Glibc)
import Glibc
#endif

let words = CommandLine.arguments.dropFirst()
let command = words.isEmpty ? "uname -sr" : words.joined(separator: " ")
let console = MemoryConsole()
do {
    let machine = try Machine(configuration: MachineConfiguration(), console: console)
    try machine.start()
    guard let prompt = console.waitForOutput("rivet:/# ", timeoutSeconds: 300) else {
        throw MachineError("the guest's shell did not come up")
    }
    // The quotes keep the markers in the output apart from the echo of the typed line.
    console.send("echo @@\"\"BEGIN; \(command); echo @@\"\"END\n")
    guard let begin = console.waitForOutput("@@BEGIN\r\n", after: prompt, timeoutSeconds: 60),
          let end = console.waitForOutput("@@END", after: begin, timeoutSeconds: 60) else {
        throw MachineError("no answer from the guest")
    }
    let answer = console.output[begin..<(end - "@@END".utf8.count)].filter { $0 != 13 }  // the tty's \r
    print(String(decoding: answer, as: UTF8.self), terminator: "")
    console.send("poweroff\n")
    let exit = machine.waitForExit()
    guard exit == .powerOff(exitCode: 0) else { throw MachineError("the guest ended with \(exit)") }
} catch {
    fputs("rivet-example-ask: \(error)\n", stderr)
    exit(1)
}
