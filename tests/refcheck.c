/* refcheck - placeholder; the model issue replaces it. */
#include <stdio.h>
int main(void) { fprintf(stderr, "refcheck: not implemented yet\n"); return 1; }
