// RivetCPU
