// RivetISA
