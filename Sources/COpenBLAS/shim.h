#ifndef ATP_COPENBLAS_SHIM_H
#define ATP_COPENBLAS_SHIM_H
// Debian installs cblas.h in the openblas-pthread include folder named by openblas.pc.
#include <cblas.h>
// OpenBLAS extensions (declared in its cblas.h as well; repeated here for clarity).
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);
char *openblas_get_config(void);
#endif
