/*
 * fileio.h — whole-file reads and durable writes for the daemon's own
 * files (config, failover journal). Plain POSIX; no logging: callers turn
 * the -errno into their own message.
 */
#ifndef MESHVISOR_FILEIO_H
#define MESHVISOR_FILEIO_H

#include <stddef.h>

/* Reads the whole file into a NUL-terminated buffer (to free()); *len
 * excludes the NUL. 0, or -errno (-EFBIG when larger than max bytes). */
int mv_file_read(const char *path, size_t max, char **out, size_t *len);

/* Replaces path with `data` atomically and durably: a temporary file next
 * to it, fsync, rename over path, fsync of the directory. 0 or -errno; on
 * error path is unchanged and the temporary file is removed. */
int mv_file_write_durable(const char *path, const char *data, size_t len);

#endif
