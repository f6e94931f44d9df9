/* A stand-in for bcryptprimitives.dll, which Wine 8 lacks: Rust's std (1.78 and later)
 * imports ProcessPrng from it on Windows, so without it every program exits with status 53
 * under Wine (rust-lang/rust#121337). ProcessPrng fills the buffer with random bytes; this
 * one asks advapi32's RtlGenRandom (SystemFunction036), which Wine has. Only for running
 * the Windows build's tests under Wine (.ci/wine); never shipped. */
#include <windows.h>

typedef BOOLEAN(WINAPI *gen_random_fn)(PVOID, ULONG);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    static gen_random_fn gen;
    if (!gen) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (!advapi)
            return FALSE;
        gen = (gen_random_fn)GetProcAddress(advapi, "SystemFunction036");
        if (!gen)
            return FALSE;
    }
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!gen(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
