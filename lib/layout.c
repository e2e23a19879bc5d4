/* The registry of lower-layer layouts: their names (vunify.conf, the
 * home's id file, init --layout), init's automatic choice, and the ops of
 * a pool.  A third layout is its layout_*.c file plus one line here. */
#define _GNU_SOURCE
#include "layout.h"

#include <errno.h>
#include <string.h>

#include "util.h"
#include "banned.h"

/* In order of preference: init's "auto" takes the first one the kernel
 * can mount. */
static const struct layout_ops *const layouts[] = {&layout_redirect_ops, &layout_link_ops};

static const struct layout_ops *layout_by_kind(enum layout_kind k)
{
	for (size_t i = 0; i < ARRAY_SIZE(layouts); i++)
		if (layouts[i]->kind == k)
			return layouts[i];
	return layouts[0];
}

unsigned layout_format(enum layout_kind k)
{
	return layout_by_kind(k)->format;
}

const char *layout_name(enum layout_kind k)
{
	return layout_by_kind(k)->name;
}

int layout_from_name(const char *s, enum layout_kind *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(layouts); i++)
		if (!strcmp(s, layouts[i]->name)) {
			*ret = layouts[i]->kind;
			return 0;
		}
	return -EINVAL;
}

enum layout_kind layout_auto(int probe_data_only)
{
	for (size_t i = 0; i < ARRAY_SIZE(layouts); i++)
		if (!layouts[i]->data_layer || probe_data_only == 1)
			return layouts[i]->kind;
	return layouts[ARRAY_SIZE(layouts) - 1]->kind;
}

const struct layout_ops *layout_ops_for(const struct pool *p)
{
	const struct layout_ops *o = layout_by_kind(p->layout);

	return p->format == 1 && o->format1 ? o->format1 : o;
}
