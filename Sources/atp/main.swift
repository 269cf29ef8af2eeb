import ArgumentParser
import Foundation

// OpenBLAS's kernels follow the CPU's instruction sets, not its model number (may restart once).
BLASCoreCheck.restartWithVectorKernelsIfNeeded()
// The root command only routes; errors become one line on stderr and a non-zero exit.
runCLI(ATP.self)
