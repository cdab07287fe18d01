/*
 * mailbox — chooses the backend for a mailbox URL (see mailbox.h).
 */
#include "herald/mailbox.h"

#include <string.h>

const struct mailbox_backend *mailbox_backend_for(const char *url)
{
	if (url != NULL && strncmp(url, "maildir:", 8) == 0)
		return &mailbox_maildir_backend;
	return NULL;
}
