/*
 * bounce_ses — Amazon SES bounce and complaint notifications
 * (bounce_int.h): JSON, as Amazon SNS mails them to an email
 * subscription, in the text of the message, with no report part. Read
 * with a few patterns, not a JSON parser: the keys herald needs and the
 * recipients' objects, quoting escaped or not.
 */
#include "bounce_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* The string value of "key" at or after s (before end), unescaped
 * quotes tolerated ("key":"v" or \"key\":\"v\"), into a new string; NULL
 * if none. *at is set past the value. Sets *oom on out-of-memory. */
static char *json_value(const char *s, const char *end, const char *key,
                        const char **at, int *oom)
{
	size_t k = strlen(key);

	for (const char *p = s; p != NULL && p + k < end;
	     p = memchr(p + 1, key[0], (size_t)(end - p - 1))) {
		const char *v = p + k, *e;

		if (memcmp(p, key, k) != 0 ||
		    (p > s && isalnum((unsigned char)p[-1])))
			continue;
		while (v < end && (*v == '\\' || *v == '"' || *v == ' ' ||
		                   *v == ':'))
			v++;
		for (e = v; e < end && *e != '"' && *e != '\\' && *e != '\n';
		     e++)
			;
		if (e - v > BOUNCE_MAX_VALUE)
			return NULL;
		*at = e;
		{
			char *r = bounce_str_ndup(v, (size_t)(e - v));

			if (r == NULL)
				*oom = 1;
			return r;
		}
	}
	return NULL;
}

int bounce_ses_read(struct bounce_event *ev, const char *text, size_t n,
                    int *oom)
{
	const char *end = text + n, *at = text, *list;
	char *type = json_value(text, end, "notificationType", &at, oom);
	int complaint;

	if (type == NULL)
		return 0;
	complaint = strcmp(type, "Complaint") == 0;
	if (!complaint && strcmp(type, "Bounce") != 0) {
		free(type);
		return 0;
	}
	free(type);
	list = memmem(at, (size_t)(end - at),
	              complaint ? "complainedRecipients" : "bouncedRecipients",
	              complaint ? 20 : 17);
	if (list == NULL)
		return 0;
	ev->kind = complaint ? BOUNCE_COMPLAINT : BOUNCE_DSN;
	if (complaint)
		ev->feedback_type =
		    json_value(at, end, "complaintFeedbackType", &at, oom);
	at = list;
	for (;;) {
		const char *next = at, *close;
		char *v = json_value(at, end, "emailAddress", &next, oom);
		char *a;
		struct bounce_rcpt *r;
		int added;

		if (v == NULL)
			break;
		/* the recipient's object ends at the next '}' */
		close = memchr(next, '}', (size_t)(end - next));
		if (close == NULL)
			close = end;
		a = bounce_addr_from(v, oom);
		free(v);
		at = close;
		if (a == NULL)
			continue;
		if ((added = bounce_rcpt_add(ev, a)) < 0) {
			*oom = 1;
			break;
		}
		if (added == 0)
			continue;
		r = &ev->rcpt[ev->nrcpt - 1];
		if (complaint) {
			r->reason = "feedback";
			continue;
		}
		r->action = json_value(next, close, "action", &next, oom);
		v = json_value(next, close, "status", &next, oom);
		if (v != NULL)
			bounce_rules_find_status(v, r->status);
		free(v);
		v = json_value(next, close, "diagnosticCode", &next, oom);
		if (v != NULL) {
			const char *c = strchr(v, ';');

			c = c != NULL ? c + 1 : v;
			r->diagnostic = bounce_str_clean(c, strlen(c));
			if (r->diagnostic == NULL)
				*oom = 1;
			free(v);
		}
	}
	return 1;
}
