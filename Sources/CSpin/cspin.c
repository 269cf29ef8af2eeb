// The spin hint lives in include/cspin.h (static inline); SwiftPM wants one source file per C target.
#include "cspin.h"
