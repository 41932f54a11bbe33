/*
 * log.h — one line per event, for people and for grep:
 *
 *   2026-11-26T13:40:00.123Z INFO  swim member dead name=n3 cause="suspicion timeout, confirmed by n2,n4"
 *   ^ UTC timestamp (ms)     ^level ^component ^message, then key=value fields
 *
 * Callers write the message followed by key=value fields in the format
 * string; a value that may contain spaces is written with mv_log_quote().
 * Lines go to stderr (systemd's journal takes them from there). Thread-safe
 * enough for one line per call (a single write(2)).
 *
 * Journal: when stderr is the journal's stream ($JOURNAL_STREAM names its
 * device and inode, as systemd sets it for a service), each line starts
 * with its syslog priority, "<3>" error, "<4>" warning, "<6>" info, "<7>"
 * debug (sd-daemon(3)): journald strips it and files the line at that
 * priority, so `journalctl -u meshvisor -p warning` shows what it should.
 *
 * Repetition: a WARN call site (one format string) that fires more than
 * MV_LOG_WARN_BURST times within MV_LOG_WARN_WINDOW_MS writes no more
 * lines until the window ends; then one line says how many it held back:
 *   ... WARN  log repeated warning suppressed=812 component=net message="connection refused"
 * That summary comes with the site's next line, or from
 * mv_log_flush_suppressed() (the agent calls it every second), whichever
 * is first. INFO, DEBUG and ERROR lines are never held back, nor lines
 * written with MV_WARN_ALWAYS: per-VM and per-member safety records (a VM
 * fenced, restarted, handed back; a member declared dead), which a
 * post-mortem needs one by one and whose number is bounded by VMs and
 * members, not by what a peer sends.
 */
#ifndef MESHVISOR_LOG_H
#define MESHVISOR_LOG_H

#include <stddef.h>

enum mv_log_level { MV_LOG_DEBUG = 0, MV_LOG_INFO = 1, MV_LOG_WARN = 2, MV_LOG_ERROR = 3 };

void mv_log_set_level(enum mv_log_level lvl);
enum mv_log_level mv_log_get_level(void);
/* "debug", "info", "warn", "error" -> level; returns -1 if unknown. */
int mv_log_level_parse(const char *s);
/* "debug", "info", "warn", "error". */
const char *mv_log_level_name(enum mv_log_level lvl);

void mv_log(enum mv_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* mv_log without holding back repeated warnings (MV_WARN_ALWAYS). */
void mv_log_always(enum mv_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define MV_LOG_WARN_BURST 20
#define MV_LOG_WARN_WINDOW_MS 10000

/* Writes the summary line of every WARN call site whose window ended with
 * lines held back. Any thread. */
void mv_log_flush_suppressed(void);
/* For tests: the burst and window (0, 0: the defaults), and whether to
 * prefix priorities regardless of $JOURNAL_STREAM (-1: detect again). */
void mv_log_set_warn_limit(unsigned burst, unsigned window_ms);
void mv_log_set_journal(int on);

/* Writes s as a log value into buf: bare if it has no space, quote or '=',
 * otherwise double-quoted with \" and \\ escaped. Returns buf. */
const char *mv_log_quote(char *buf, size_t len, const char *s);

#define MV_DEBUG(comp, ...) mv_log(MV_LOG_DEBUG, comp, __VA_ARGS__)
#define MV_INFO(comp, ...) mv_log(MV_LOG_INFO, comp, __VA_ARGS__)
#define MV_WARN(comp, ...) mv_log(MV_LOG_WARN, comp, __VA_ARGS__)
#define MV_WARN_ALWAYS(comp, ...) mv_log_always(MV_LOG_WARN, comp, __VA_ARGS__)
#define MV_ERROR(comp, ...) mv_log(MV_LOG_ERROR, comp, __VA_ARGS__)

#endif
