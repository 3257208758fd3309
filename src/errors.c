/* errors.c - cx_strerror and cx_err_name, both generated from CX_ERRNO_MAP. */
#include "cxvars.h"

const char *cx_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define CX__ERR_MSG(name, value, msg) \
    case CX_##name:                   \
        return msg;
        CX_ERRNO_MAP(CX__ERR_MSG)
#undef CX__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *cx_err_name(int code)
{
    switch (code) {
    case 0:
        return "OK";
#define CX__ERR_NAME(name, value, msg) \
    case CX_##name:                    \
        return "CX_" #name;
        CX_ERRNO_MAP(CX__ERR_NAME)
#undef CX__ERR_NAME
    default:
        return "UNKNOWN";
    }
}
