import ArgumentParser
import Foundation

// The root command only routes; errors become one line on stderr and a non-zero exit.
runCLI(ATP.self)
