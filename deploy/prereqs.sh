#!/usr/bin/env bash
# The system programs `make demo`, `make test`, `make compose-check` and `.ci/run` need.
# Missing ones are installed when we are root on Debian/Ubuntu; otherwise this stops before
# anything runs and prints the exact command to run. One script for all of them.
#
# usage: deploy/prereqs.sh [--dry-run|--list] demo|test|compose-check|ci ...
#   --dry-run, --list   name every program the targets need, its package and whether it is
#                       here, and the install command that would run; installs nothing
set -euo pipefail

dry_run=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --dry-run|--list) dry_run=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) targets+=("$arg") ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(ci)

# What each target starts. The tests start Kafka (java, its jars resolved with mvn) and a real
# Prometheus server and promtool; the demo starts Kafka; compose-check runs docker-compose.
programs_for() {
  case "$1" in
    demo) echo "make python3-venv java mvn" ;;
    test) echo "make python3-venv java mvn prometheus promtool" ;;
    compose-check) echo "docker-compose" ;;
    ci) echo "make python3-venv java mvn prometheus promtool docker-compose" ;;
    *) echo "deploy/prereqs.sh: unknown target '$1' (demo, test, compose-check, ci)" >&2
       exit 2 ;;
  esac
}

package_for() {
  case "$1" in
    java) echo openjdk-17-jre-headless ;;  # Kafka 4 needs Java 17+
    mvn) echo maven ;;
    prometheus|promtool) echo prometheus ;;  # Debian's package ships both
    python3-venv) echo python3-venv ;;
    *) echo "$1" ;;
  esac
}

# Prints where the program is (and its version when that matters); fails when it is missing.
check() {
  case "$1" in
    java)
      command -v java >/dev/null || return 1
      local line major
      line=$(java -version 2>&1) || return 1
      line=${line%%$'\n'*}
      [[ $line =~ \"([0-9]+)(\.([0-9]+))? ]] || return 1
      major=${BASH_REMATCH[1]}
      [ "$major" = 1 ] && major=${BASH_REMATCH[3]}  # "1.8.0" is Java 8
      if [ "$major" -lt 17 ]; then echo "Java $major is too old (17+)"; return 1; fi
      echo "$(command -v java) (Java $major)" ;;
    python3-venv)
      # Only `make install` needs it, and only before .venv exists.
      if [ -x "${VENV:-.venv}/bin/python" ]; then echo "${VENV:-.venv} exists"; return 0; fi
      "${PYTHON:-python3}" -c 'import ensurepip, venv' 2>/dev/null || return 1
      echo "${PYTHON:-python3} -m venv works" ;;
    *) command -v "$1" || return 1 ;;
  esac
}

missing=()
packages=()
seen=" "
for target in "${targets[@]}"; do
  for program in $(programs_for "$target"); do
    case "$seen" in *" $program "*) continue ;; esac
    seen+="$program "
    package=$(package_for "$program")
    if found=$(check "$program"); then
      status="ok: $found"
    else
      status="MISSING${found:+ ($found)}"
      missing+=("$program")
      case " ${packages[*]-} " in *" $package "*) ;; *) packages+=("$package") ;; esac
    fi
    [ "$dry_run" = 1 ] && printf '%-16s %-26s %s\n' "$program" "$package" "$status"
  done
done

if [ ${#missing[@]} -eq 0 ]; then
  [ "$dry_run" = 1 ] && echo "nothing to install"
  exit 0
fi

install=(apt-get install -y --no-install-recommends "${packages[@]}")
debian=0
[ -r /etc/debian_version ] && debian=1
if [ "$dry_run" = 1 ]; then
  if [ "$debian" = 1 ] && [ "$EUID" = 0 ]; then echo "would run: apt-get update && ${install[*]}"
  elif [ "$debian" = 1 ]; then echo "would stop and ask for: sudo apt-get update && sudo ${install[*]}"
  else echo "would stop: install ${missing[*]} with your package manager"; fi
  exit 0
fi

if [ "$debian" = 0 ]; then
  echo "missing: ${missing[*]}. Install them with your system's package manager" \
       "(on Debian/Ubuntu: ${install[*]}), then run this again." >&2
  exit 1
fi
if [ "$EUID" != 0 ]; then
  echo "missing: ${missing[*]}. Run: sudo apt-get update && sudo ${install[*]}" >&2
  exit 1
fi

echo "installing ${packages[*]} (missing: ${missing[*]}) ..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Java 17 is what Debian 12 and Ubuntu 22.04/24.04 ship; newer releases carry only a newer one.
for i in "${!packages[@]}"; do
  if [ "${packages[$i]}" = openjdk-17-jre-headless ] \
      && ! apt-cache show openjdk-17-jre-headless >/dev/null 2>&1; then
    packages[$i]=default-jre-headless
  fi
done
# apt's chatter (debconf notes about apt-utils) is noise on success; on failure it is the answer.
apt_log=$(mktemp)
if ! apt-get install -y -qq --no-install-recommends "${packages[@]}" >"$apt_log" 2>&1; then
  cat "$apt_log" >&2; rm -f "$apt_log"; exit 1
fi
rm -f "$apt_log"
# The Debian prometheus package starts a system service on :9090; our tests start their own
# servers on free loopback ports and want none of theirs in the way.
case " ${packages[*]} " in
  *" prometheus "*)
    if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
      systemctl stop prometheus || true
    fi ;;
esac
still=()
for program in "${missing[@]}"; do check "$program" >/dev/null || still+=("$program"); done
if [ ${#still[@]} -gt 0 ]; then
  echo "still missing after the install: ${still[*]}" >&2
  exit 1
fi
