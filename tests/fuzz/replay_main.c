/* replay_main: a stand-in for libFuzzer's main, so `make fuzz-regress` can
 * run every committed corpus and regression input through a target with the
 * normal compiler and ASan+UBSan (no clang needed). Each argument is a file,
 * or a folder whose regular files are all replayed. Any sanitizer report or
 * FUZZ_ASSERT aborts the process, which fails the make target. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

/* Targets without set-up need not define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static size_t replayed;

static void replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(2);
    }
    rewind(f);
    /* Exact size, like libFuzzer's copy: overruns are reported. */
    data = malloc(n > 0 ? (size_t)n : 1);
    if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)n);
    free(data);
    replayed++;
}

static void replay_path(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: no such file %s\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "replay: cannot open folder %s\n", path);
        exit(2);
    }
    while ((e = readdir(d)) != NULL) {
        char child[4096];
        if (e->d_name[0] == '.')
            continue;
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        if (stat(child, &st) == 0 && S_ISREG(st.st_mode))
            replay_file(child);
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    int i;

    if (LLVMFuzzerInitialize != NULL)
        LLVMFuzzerInitialize(&argc, &argv);
    for (i = 1; i < argc; i++)
        replay_path(argv[i]);
    printf("%s: %zu inputs replayed, no findings\n", argv[0], replayed);
    return 0;
}
