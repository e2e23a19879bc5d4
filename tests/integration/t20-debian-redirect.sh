#!/bin/bash
# Real Debian guests, redirect layout (see debian-guests.sh).
. "$(dirname "$0")/lib.sh"
LAYOUT=redirect
. "$(dirname "$0")/debian-guests.sh"
