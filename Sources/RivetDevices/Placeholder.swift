// RivetDevices
