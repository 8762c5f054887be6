import ArgumentParser

/// The `rivet` command line: one subcommand per front end.
struct Rivet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rivet",
        abstract: "A RISC-V 64 virtual machine: whole machines (run), bare-metal programs (run-elf) and disk images (img).",
        subcommands: [Run.self, RunElf.self, Img.self])
}
Rivet.main()
