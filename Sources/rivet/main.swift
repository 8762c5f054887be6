import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// The `rivet` command line: one subcommand per front end.
struct Rivet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rivet",
        abstract: "A RISC-V 64 virtual machine: whole machines (run), bare-metal programs (run-elf), Linux programs (user) and disk images (img).",
        subcommands: [Run.self, RunElf.self, User.self, Img.self, Lockstep.self])
}

// Parse and run by hand so that a bad command line gives one line on stderr (plus where to look),
// not a page of usage; --help still prints the full help on stdout.
do {
    // Started by binfmt_misc as `rivet-binfmt-riscv64`: this is `rivet user` on the program (see Binfmt.swift).
    var command = try Rivet.parseAsRoot(Binfmt.userCommandLine(CommandLine.arguments))
    try command.run()
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    let code = Rivet.exitCode(for: error)
    if code == .success {
        print(Rivet.fullMessage(for: error))
        exit(0)
    }
    let message = Rivet.message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
    fputs("rivet: \(message) (see 'rivet help')\n", stderr)
    exit(code.rawValue)
}
