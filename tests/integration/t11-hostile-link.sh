#!/bin/bash
# Hostile guest trees, link layout (see hostile-guests.sh).
. "$(dirname "$0")/lib.sh"
LAYOUT=link
. "$(dirname "$0")/hostile-guests.sh"
