/*
 * mailbox — chooses the backend for a mailbox URL (see mailbox.h).
 */
#include "herald/mailbox.h"

#include <string.h>

const struct mailbox_backend *mailbox_backend_for(const char *url)
{
	if (url != NULL && strncmp(url, "maildir:", 8) == 0)
		return &mailbox_maildir_backend;
	if (url != NULL && (strncmp(url, "imaps://", 8) == 0 ||
	                    strncmp(url, "imap://", 7) == 0))
		return &mailbox_imap_backend;
	return NULL;
}

struct mailbox *mailbox_open(const char *url, const struct mailbox_opts *o,
                             struct diag *d)
{
	const struct mailbox_backend *b = mailbox_backend_for(url);

	if (b == NULL) {
		diag_add(d, NULL, 0, 0,
		         "bounce mailbox %s: want maildir:/path, "
		         "imaps://user@host/Folder or imap://user@host/Folder",
		         url ? url : "(none)");
		return NULL;
	}
	return b->open(url, o, d);
}
