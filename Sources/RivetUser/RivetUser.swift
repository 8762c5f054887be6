// The process virtual machine (rivet user).
