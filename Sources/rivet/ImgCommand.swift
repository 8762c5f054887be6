import ArgumentParser

/// `rivet img`: disk image tools (qemu-img compatible). Filled in by the storage work.
struct Img: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "img", abstract: "Create, inspect, check and convert disk images.")
}
