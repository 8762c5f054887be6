// RivetMemory
