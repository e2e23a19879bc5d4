#!/bin/bash
# kill -9 during replicated unify and replicate, then failover, link layout
# (see t62-failover-crash.sh): B rebuilds the pruned guest from
# HOME/vunify-lower alone.
LAYOUT="link" exec "$(dirname "$0")/t62-failover-crash.sh" "$@"
