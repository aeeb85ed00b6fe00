/* The doubling rule of FOLIO_GROW (grow.h). */
#include "grow.h"

size_t folio_grow_cap(size_t cap, size_t need) {
    size_t c = cap ? cap : 16;
    while (c < need) {
        if (c > ((size_t)-1) / 2) FOLIO_BUG("array capacity overflow (%zu elements)", need);
        c *= 2;
    }
    return c;
}
