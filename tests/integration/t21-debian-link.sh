#!/bin/bash
# Real Debian guests, link layout (see debian-guests.sh).
. "$(dirname "$0")/lib.sh"
LAYOUT=link
. "$(dirname "$0")/debian-guests.sh"
