// RivetSnapshot
