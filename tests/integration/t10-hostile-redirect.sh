#!/bin/bash
# Hostile guest trees, redirect layout (see hostile-guests.sh).
. "$(dirname "$0")/lib.sh"
LAYOUT=redirect
. "$(dirname "$0")/hostile-guests.sh"
