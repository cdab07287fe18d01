/*
 * figures — a release's figures as admins read them, worked out from its
 * counts (store_releases_each) and its attempts' figures
 * (store_release_figures) in one place, so that `herald status` and
 * herald-web's releases page cannot disagree.
 *
 * Pure functions; never fail. Each returns false when the figure does not
 * apply (nothing to divide by, a release not running), and then leaves
 * *out alone.
 */
#ifndef HERALD_FIGURES_H
#define HERALD_FIGURES_H

#include <stdbool.h>
#include <time.h>

#include "herald/store.h"

/* Deliveries sent, in percent of the total. */
bool figures_sent_percent(const struct store_release_info *r, double *out);

/* While the release runs (active, with deliveries left, attempted):
 * deliveries sent a second over the last STORE_RATE_WINDOW seconds, or
 * since the first attempt when that is sooner (f read at now). */
bool figures_rate(const struct store_release_info *r,
                  const struct store_release_figures *f, time_t now,
                  double *out);

/* Refused at once (failed) or bounced later, in percent of those
 * answered (sent, bounced, complained, failed). */
bool figures_bounce_percent(const struct store_release_info *r, double *out);

#endif
