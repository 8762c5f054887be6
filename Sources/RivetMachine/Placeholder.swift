// RivetMachine
