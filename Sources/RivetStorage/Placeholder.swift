// RivetStorage
