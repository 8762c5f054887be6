// RivetFloat
