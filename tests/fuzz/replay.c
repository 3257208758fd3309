/* replay.c - runs LLVMFuzzerTestOneInput without libFuzzer.
 *
 *   replay [FILE|DIR]...     each file, or each file of each directory
 *                            (sorted); no argument: $CX_FUZZ_CORPUS or
 *                            tests/fuzz/corpus
 *   replay --random N [SEED] N pseudo-random inputs (a plain fuzzer for
 *                            machines without clang's libFuzzer)
 *
 * A divergence aborts inside the fuzz target; reaching the end means none.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long inputs;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    /* A private heap copy of exactly n bytes: ASan and memcheck then catch
     * reads past the end. */
    uint8_t *copy = malloc(n ? n : 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, buf, n);
    LLVMFuzzerTestOneInput(copy, n);
    free(copy);
    inputs++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (d == NULL) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof(*names));
            if (nn == NULL)
                break;
            names = nn;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL)
            break;
        snprintf(names[n], len, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat fs;
        if (stat(names[i], &fs) == 0 && S_ISREG(fs.st_mode) && run_file(names[i]) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

static uint64_t rng;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void run_random(unsigned long count, uint64_t seed)
{
    static uint8_t buf[2048];
    rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
    for (unsigned long i = 0; i < count; i++) {
        size_t n = 1 + next_rand() % sizeof(buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)next_rand();
        LLVMFuzzerTestOneInput(buf, n);
        inputs++;
    }
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc >= 3 && strcmp(argv[1], "--random") == 0) {
        run_random(strtoul(argv[2], NULL, 10),
                   argc >= 4 ? strtoull(argv[3], NULL, 10) : 0);
    } else if (argc < 2) {
        const char *dir = getenv("CX_FUZZ_CORPUS");
        rc = run_path(dir != NULL ? dir : "tests/fuzz/corpus");
    } else {
        for (int i = 1; i < argc; i++)
            if (run_path(argv[i]) != 0)
                rc = 1;
    }
    printf("fuzz replay: %lu inputs, %lu execs, 0 divergences\n", inputs, inputs);
    return rc == 0 && inputs > 0 ? 0 : 1;
}
