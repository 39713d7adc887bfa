/*
 * pktlog: the reader of the kernel's nflog group, where porthop's event
 * rules log the packets they pick (docs/events.md).  A transport of its
 * own, wired to porthopd's loop as bus is: it reads what the kernel copies
 * to it and changes nothing in the kernel, so it is not behind nftio
 * (the one door for what porthop writes to and reads back from its
 * table), and nftio's libnftables context never waits on it.
 *
 * Bounded work per wake-up; every packet lost on the way (the socket's
 * buffer overrun) is counted from the kernel's sequence numbers.
 */
#ifndef PORTHOP_PKTLOG_H
#define PORTHOP_PKTLOG_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct pktlog;

/* One logged packet: the rule's prefix (NUL-terminated) and the packet
 * from its network header on (len bytes, at most 128), both borrowed for
 * the call (at most 128 unless pktlog_configure says more). */
typedef void (*pktlog_packet_fn)(void *arg, const char *prefix,
				 const uint8_t *pkt, size_t len);
/* n packets the kernel logged that never reached porthopd. */
typedef void (*pktlog_lost_fn)(void *arg, uint64_t n);

/* Binds nflog group `group` in this network namespace and reads it from
 * base's loop.  NULL with *ret_error (malloc'ed, the caller frees it)
 * if it cannot: no permission, the group taken by another process. */
struct pktlog *pktlog_new(struct event_base *base, unsigned group,
			  pktlog_packet_fn packet, pktlog_lost_fn lost,
			  void *arg, char **ret_error);
void pktlog_free(struct pktlog *p);	/* accepts NULL; unbinds */

/* Changes what the kernel copies of each packet (copy_bytes, at most
 * 65535) and how it batches them: qthresh packets per message, or
 * timeout_cs hundredths of a second.  The defaults (128 bytes, 64, 10)
 * suit a feed read in bulk; a reader that must answer at once (knocks)
 * asks for 1 and 0.  0, or a negative errno. */
int pktlog_configure(struct pktlog *p, unsigned copy_bytes, unsigned qthresh,
		     unsigned timeout_cs);

/* Packets read, and receive errors (ENOBUFS: overruns). */
uint64_t pktlog_packets(const struct pktlog *p);
uint64_t pktlog_overruns(const struct pktlog *p);

#endif
