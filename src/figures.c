/*
 * figures — a release's figures for admins (see figures.h).
 */
#include "herald/figures.h"

bool figures_sent_percent(const struct store_release_info *r, double *out)
{
	if (r->total == 0)
		return false;
	*out = 100.0 * (double)r->count[STORE_SENT] / (double)r->total;
	return true;
}

bool figures_rate(const struct store_release_info *r,
                  const struct store_release_figures *f, time_t now,
                  double *out)
{
	size_t left = r->count[STORE_QUEUED] + r->count[STORE_SENDING] +
	              r->count[STORE_DEFERRED];
	double span;

	if (r->state != STORE_RELEASE_ACTIVE || left == 0 ||
	    f->first_attempt == 0)
		return false;
	span = difftime(now, f->first_attempt);
	if (span > STORE_RATE_WINDOW)
		span = STORE_RATE_WINDOW;
	if (span < 1)
		span = 1;
	*out = (double)f->sent_recent / span;
	return true;
}

bool figures_bounce_percent(const struct store_release_info *r, double *out)
{
	size_t answered = r->count[STORE_SENT] + r->count[STORE_BOUNCED] +
	                  r->count[STORE_COMPLAINED] + r->count[STORE_FAILED];

	if (answered == 0)
		return false;
	*out = 100.0 *
	       (double)(r->count[STORE_BOUNCED] + r->count[STORE_FAILED]) /
	       (double)answered;
	return true;
}
