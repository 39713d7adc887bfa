/*
 * pktlog: nflog group reader (see pktlog.h), with libnetfilter_log.
 */
#include "pktlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <libnetfilter_log/libnetfilter_log.h>
#include <libnfnetlink/libnfnetlink.h>

/* What the kernel copies of each packet: enough for an IPv6 header, a
 * few extension headers and the ports. */
#define COPY_BYTES 128
/* Packets the kernel gathers into one message, and how long it may hold
 * them (1/100 s): fewer wake-ups under a flood, 100 ms at most late. */
#define QUEUE_THRESHOLD 64
#define QUEUE_TIMEOUT_CS 10
/* Messages read per wake-up before the loop serves others. */
#define READS_PER_WAKE 64
#define RCVBUF (4 << 20)

struct pktlog {
	struct nflog_handle *h;
	struct nflog_g_handle *gh;
	struct event *ev;
	pktlog_packet_fn packet;
	pktlog_lost_fn lost;
	void *arg;
	bool have_seq;
	uint32_t next_seq;
	uint64_t packets, overruns;
	char buf[1 << 16];
};

static int on_nflog(struct nflog_g_handle *gh, struct nfgenmsg *nfmsg,
		    struct nflog_data *nfa, void *data)
{
	struct pktlog *p = data;
	const char *prefix = nflog_get_prefix(nfa);
	char *payload = NULL;
	int len = nflog_get_payload(nfa, &payload);
	uint32_t seq;

	(void)gh;
	(void)nfmsg;
	/* The instance's sequence numbers: a gap is what was lost. */
	if (nflog_get_seq(nfa, &seq) == 0) {
		if (p->have_seq && seq != p->next_seq && p->lost)
			p->lost(p->arg, (uint32_t)(seq - p->next_seq));
		p->have_seq = true;
		p->next_seq = seq + 1;
	}
	p->packets++;
	p->packet(p->arg, prefix ? prefix : "",
		  (const uint8_t *)payload, len > 0 ? (size_t)len : 0);
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct pktlog *p = arg;

	(void)what;
	for (int i = 0; i < READS_PER_WAKE; i++) {
		ssize_t n = recv(fd, p->buf, sizeof(p->buf), MSG_DONTWAIT);

		if (n < 0) {
			/* Overrun: the sequence numbers count what it
			 * cost when the next packet arrives. */
			if (errno == ENOBUFS) {
				p->overruns++;
				continue;
			}
			return;	/* EAGAIN, or nothing more to do now */
		}
		nflog_handle_packet(p->h, p->buf, (int)n);
	}
}

static char *errstr(const char *what, unsigned group)
{
	char *s = NULL;

	if (asprintf(&s, "nflog group %u: %s: %s", group, what,
		     strerror(errno ? errno : EIO)) < 0)
		s = NULL;
	return s;
}

struct pktlog *pktlog_new(struct event_base *base, unsigned group,
			  pktlog_packet_fn packet, pktlog_lost_fn lost,
			  void *arg, char **ret_error)
{
	struct pktlog *p = calloc(1, sizeof(*p));
	const char *what = "out of memory";
	int fd;

	errno = ENOMEM;
	if (p == NULL)
		goto fail;
	p->packet = packet;
	p->lost = lost;
	p->arg = arg;
	what = "cannot open nfnetlink";
	errno = 0;
	p->h = nflog_open();
	if (p->h == NULL)
		goto fail;
	/* Kernels before 3.8 wanted the family bound first; later ones
	 * ignore it.  Errors here say nothing useful. */
	nflog_bind_pf(p->h, AF_INET);
	nflog_bind_pf(p->h, AF_INET6);
	what = "cannot bind (another process reads it?)";
	p->gh = nflog_bind_group(p->h, (uint16_t)group);
	if (p->gh == NULL)
		goto fail;
	what = "cannot configure";
	if (nflog_set_mode(p->gh, NFULNL_COPY_PACKET, COPY_BYTES) < 0 ||
	    nflog_set_flags(p->gh, NFULNL_CFG_F_SEQ) < 0 ||
	    nflog_set_qthresh(p->gh, QUEUE_THRESHOLD) < 0 ||
	    nflog_set_timeout(p->gh, QUEUE_TIMEOUT_CS) < 0)
		goto fail;
	nflog_callback_register(p->gh, on_nflog, p);
	fd = nflog_fd(p->h);
	nfnl_rcvbufsiz(nflog_nfnlh(p->h), RCVBUF);
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		goto fail;
	what = "out of memory";
	p->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, p);
	if (p->ev == NULL || event_add(p->ev, NULL) < 0)
		goto fail;
	return p;
fail:
	if (ret_error)
		*ret_error = errstr(what, group);
	pktlog_free(p);
	return NULL;
}

void pktlog_free(struct pktlog *p)
{
	if (p == NULL)
		return;
	if (p->ev)
		event_free(p->ev);
	if (p->gh)
		nflog_unbind_group(p->gh);
	if (p->h)
		nflog_close(p->h);
	free(p);
}

int pktlog_configure(struct pktlog *p, unsigned copy_bytes, unsigned qthresh,
		     unsigned timeout_cs)
{
	if (copy_bytes > 0xffff ||
	    nflog_set_mode(p->gh, NFULNL_COPY_PACKET, copy_bytes) < 0 ||
	    nflog_set_qthresh(p->gh, qthresh) < 0 ||
	    nflog_set_timeout(p->gh, timeout_cs) < 0)
		return -EINVAL;
	return 0;
}

uint64_t pktlog_packets(const struct pktlog *p)
{
	return p ? p->packets : 0;
}

uint64_t pktlog_overruns(const struct pktlog *p)
{
	return p ? p->overruns : 0;
}
