/* netrelay.h - loopback network faults for tst_review (plain C).
 *
 * A relay listens on 127.0.0.2:PORT and forwards every connection to
 * 127.0.0.1:PORT, where the router listens; the router advertises
 * 127.0.0.2, so its remote senders go through the relay. The relay can add
 * a one-way delay to both directions and limit the bytes per second from
 * the sender to the router. A flood opens tcp connections to the router
 * directly, without any key, at a given rate, and keeps the newest open.
 * Nothing but loopback addresses; every loop is bounded in count and time.
 */
#ifndef REVIEW_NETRELAY_H
#define REVIEW_NETRELAY_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct review_relay review_relay;

/* Start a relay 127.0.0.2:port -> 127.0.0.1:port; NULL if it cannot bind. */
review_relay *review_relay_start(int port);
void review_relay_set_delay_ms(review_relay *r, int ms);
void review_relay_set_rate_up(review_relay *r, long bytes_per_s);
long review_relay_accepted(const review_relay *r);
long review_relay_bytes_up(const review_relay *r);
long review_relay_bytes_down(const review_relay *r);
void review_relay_stop(review_relay *r);

typedef struct review_flood review_flood;
/* Open at most `total` connections to 127.0.0.1:port at `rate` per second
 * (for at most `seconds`), keeping the newest `keep` open. */
review_flood *review_flood_start(int port, int rate, int total, double seconds, int keep);
long review_flood_opened(const review_flood *f);
void review_flood_stop(review_flood *f);

double review_now(void);

#ifdef __cplusplus
}
#endif

#endif
