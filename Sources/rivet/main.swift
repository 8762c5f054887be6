import ArgumentParser
struct Rivet: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A RISC-V 64 virtual machine.")
}
Rivet.main()
