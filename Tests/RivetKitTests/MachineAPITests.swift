import XCTest
#if canImport(Glibc)
import Glibc
#endif
import RivetKit

/// The machine API on a tiny bare-metal firmware (fast even in a debug build): console in and out,
/// pause/resume/status, power-off, snapshot and restore through the object, several machines at once.
/// (Booting Linux four times in one process is Examples/ManyGuests, run by tests/integration/test_library.py.)
final class MachineAPITests: XCTestCase {
    /// Tests/RivetKitTests/echo.S assembled (riscv64-unknown-elf-as, -Ttext=0x80000000, objcopy -O binary):
    /// prints "ready\n", echoes input bytes, powers off on '.' (code 0) and on '!' (code 3).
    static let echoFirmware: [UInt8] = [
        0x37, 0x04, 0x00, 0x10, 0xb7, 0x04, 0x10, 0x00, 0x17, 0x05, 0x00, 0x00,
        0x13, 0x05, 0x45, 0x06, 0x83, 0x42, 0x05, 0x00, 0x63, 0x88, 0x02, 0x00,
        0x23, 0x00, 0x54, 0x00, 0x13, 0x05, 0x15, 0x00, 0x6f, 0xf0, 0x1f, 0xff,
        0x83, 0x42, 0x54, 0x00, 0x93, 0xf2, 0x12, 0x00, 0xe3, 0x8c, 0x02, 0xfe,
        0x03, 0x43, 0x04, 0x00, 0x93, 0x03, 0xe0, 0x02, 0x63, 0x0a, 0x73, 0x00,
        0x93, 0x03, 0x10, 0x02, 0x63, 0x0e, 0x73, 0x00, 0x23, 0x00, 0x64, 0x00,
        0x6f, 0xf0, 0xdf, 0xfd, 0xb7, 0x52, 0x00, 0x00, 0x9b, 0x82, 0x52, 0x55,
        0x23, 0xa0, 0x54, 0x00, 0x6f, 0xf0, 0x5f, 0xff, 0xb7, 0x32, 0x03, 0x00,
        0x9b, 0x82, 0x32, 0x33, 0x23, 0xa0, 0x54, 0x00, 0x6f, 0xf0, 0x5f, 0xff,
        0x72, 0x65, 0x61, 0x64, 0x79, 0x0a, 0x00, 0x00,
    ]
    var directory = ""

    override func setUpWithError() throws {
        var template = Array("/tmp/rivetkit-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        XCTAssertNotNil(made)
        directory = String(cString: made!)
        try write(MachineAPITests.echoFirmware, to: directory + "/echo.bin")
        try write([0x6f, 0, 0, 0], to: directory + "/spin.bin")   // j . : a kernel that is never reached
    }

    override func tearDown() {
        for name in ["echo.bin", "spin.bin", "saved.rivet"] { unlink(directory + "/" + name) }
        rmdir(directory)
    }

    func write(_ bytes: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw MachineError("\(path): cannot create") }
        defer { close(fd) }
        XCTAssertEqual(bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }, bytes.count)
    }

    func configuration() -> MachineConfiguration {
        var c = MachineConfiguration()
        c.firmwarePath = directory + "/echo.bin"
        c.kernelPath = directory + "/spin.bin"
        c.memorySize = 32 << 20
        return c
    }

    func testConsoleEchoAndPowerOffFromTheGuest() throws {
        let console = MemoryConsole()
        let machine = try Machine(configuration: configuration(), console: console)
        XCTAssertEqual(machine.status.started, false)
        try machine.start()
        XCTAssertNotNil(console.waitForOutput("ready\n", timeoutSeconds: 60))
        console.send("hello")
        XCTAssertNotNil(console.waitForOutput("hello", after: 6, timeoutSeconds: 60))
        console.send("!")
        XCTAssertEqual(machine.waitForExit(timeoutSeconds: 60), .powerOff(exitCode: 3))
        XCTAssertEqual(console.outputText, "ready\nhello")
        XCTAssertEqual(machine.status.exit, .powerOff(exitCode: 3))
        XCTAssertThrowsError(try machine.start())
    }

    func testPauseResumeStatusAndPowerOff() throws {
        let console = MemoryConsole()
        let machine = try Machine(configuration: configuration(), console: console)
        try machine.start()
        XCTAssertNotNil(console.waitForOutput("ready\n", timeoutSeconds: 60))
        XCTAssertTrue(machine.status.isRunning)
        machine.pause()
        XCTAssertEqual(machine.status.runState, .paused)
        XCTAssertFalse(machine.status.isRunning)
        // Paused: input waits; nothing is echoed until the machine continues.
        console.send("xyz")
        XCTAssertNil(console.waitForOutput("xyz", timeoutSeconds: 0.5))
        try machine.resume()
        XCTAssertNotNil(console.waitForOutput("xyz", timeoutSeconds: 60))
        machine.powerOff()
        XCTAssertEqual(machine.waitForExit(timeoutSeconds: 60), .quitByUser)
        XCTAssertEqual(machine.status.runState, .shutdown)
        XCTAssertThrowsError(try machine.resume())
    }

    func testResetRunsTheFirmwareAgain() throws {
        let console = MemoryConsole()
        let machine = try Machine(configuration: configuration(), console: console)
        try machine.start()
        XCTAssertNotNil(console.waitForOutput("ready\n", timeoutSeconds: 60))
        try machine.reset()
        XCTAssertNotNil(console.waitForOutput("ready\n", after: 6, timeoutSeconds: 60))
        console.send(".")
        XCTAssertEqual(machine.waitForExit(timeoutSeconds: 60), .powerOff(exitCode: 0))
        XCTAssertEqual(console.outputText, "ready\nready\n")
    }

    func testSnapshotAndRestoreThroughTheMachine() throws {
        let path = directory + "/saved.rivet"
        let first = MemoryConsole()
        let source = try Machine(configuration: configuration(), console: first)
        try source.start()
        XCTAssertNotNil(first.waitForOutput("ready\n", timeoutSeconds: 60))
        source.pause()
        let stats = try source.snapshot(to: "file:" + path)
        XCTAssertGreaterThan(stats.bytes, 0)
        source.powerOff()
        XCTAssertEqual(source.waitForExit(timeoutSeconds: 60), .quitByUser)

        var restored = configuration()
        restored.incoming = "file:" + path
        let second = MemoryConsole()
        let copy = try Machine(configuration: restored, console: second)
        try copy.start()
        second.send("rs.")
        XCTAssertEqual(copy.waitForExit(timeoutSeconds: 60), .powerOff(exitCode: 0))
        // No banner: the copy continues where the source was, in the echo loop.
        XCTAssertEqual(second.outputText, "rs")
    }

    func testFourMachinesInOneProcessKeepTheirOwnConsoles() throws {
        let consoles = (0..<4).map { _ in MemoryConsole() }
        let machines = try consoles.map { try Machine(configuration: configuration(), console: $0) }
        for m in machines { try m.start() }
        for (i, c) in consoles.enumerated() {
            XCTAssertNotNil(c.waitForOutput("ready\n", timeoutSeconds: 120))
            c.send("machine-\(i)")
        }
        // Machine 2 ends first, with its own code; the others go on.
        consoles[2].send("!")
        XCTAssertEqual(machines[2].waitForExit(timeoutSeconds: 120), .powerOff(exitCode: 3))
        for (i, c) in consoles.enumerated() where i != 2 {
            XCTAssertNotNil(c.waitForOutput("machine-\(i)", timeoutSeconds: 120))
            XCTAssertTrue(machines[i].status.isRunning)
            c.send(".")
        }
        for (i, m) in machines.enumerated() {
            XCTAssertEqual(m.waitForExit(timeoutSeconds: 120), .powerOff(exitCode: i == 2 ? 3 : 0))
            XCTAssertEqual(consoles[i].outputText, "ready\nmachine-\(i)")
        }
    }

    func testOutputStreamDeliversTheGuestsBytesAndEnds() async throws {
        let console = MemoryConsole()
        let machine = try Machine(configuration: configuration(), console: console)
        let stream = console.outputChunks()
        try machine.start()
        XCTAssertNotNil(console.waitForOutput("ready\n", timeoutSeconds: 60))
        console.send("ab.")
        var received: [UInt8] = []
        for await chunk in stream { received += chunk }   // ends when the machine has stopped
        XCTAssertEqual(String(decoding: received, as: UTF8.self), "ready\nab")
        XCTAssertEqual(machine.waitForExit(), .powerOff(exitCode: 0))
    }

    func testBadConfigurationsAreRefusedWithTheReason() throws {
        var c = configuration()
        c.firmwarePath = directory + "/missing.bin"
        XCTAssertThrowsError(try Machine(configuration: c, console: MemoryConsole())) { error in
            XCTAssertTrue("\(error)".contains("missing.bin: No such file"), "\(error)")
        }
        c = configuration()
        c.hartCount = 9
        XCTAssertThrowsError(try Machine(configuration: c, console: MemoryConsole())) { error in
            XCTAssertTrue("\(error)".contains("--smp must be between 1 and 8"), "\(error)")
        }
        // Never started: powering off ends it without running.
        let idle = try Machine(configuration: configuration(), console: MemoryConsole())
        idle.powerOff()
        XCTAssertEqual(idle.waitForExit(timeoutSeconds: 5), .quitByUser)
    }
}
