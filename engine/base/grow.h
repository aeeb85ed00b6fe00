/* Growing arrays: the one doubling rule every growable array in the tree uses. */
#ifndef FOLIO_GROW_H
#define FOLIO_GROW_H

#include <stddef.h>

#include "error.h"

/* The capacity to grow to for at least need elements: cap doubled (16 when 0) until it
 * suffices. Returns cap unchanged when it already holds need. */
size_t folio_grow_cap(size_t cap, size_t need);

/* Makes the array ptr (capacity cap elements, any integer type) hold at least need elements,
 * reallocating it with folio_xrealloc (never NULL). Contents are kept, new slots are not
 * initialised. For parallel arrays sharing one capacity, use folio_grow_cap and realloc each. */
#define FOLIO_GROW(ptr, cap, need)                                                   \
    do {                                                                             \
        if ((size_t)(need) > (size_t)(cap)) {                                        \
            (cap) = folio_grow_cap((size_t)(cap), (size_t)(need));                   \
            (ptr) = folio_xrealloc((ptr), sizeof *(ptr) * (size_t)(cap));            \
        }                                                                            \
    } while (0)

#endif
