/*
 * version.c - cx_version(): the version of the library that is loaded.
 *
 * The string is the one the headers were compiled with when the library was
 * built, so a program can compare it with its own CX_VERSION_STRING.
 *
 * Copyright (c) 2026 The cxvars authors. BSD-2-Clause, see LICENSE.
 */
#include "cxvars.h"

/* Borrowed: a static string, valid for the life of the process. */
const char *cx_version(void)
{
    return CX_VERSION_STRING;
}
