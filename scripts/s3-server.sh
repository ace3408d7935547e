#!/usr/bin/env bash
# A throw-away S3 server for tests: a single-node Ceph (one monitor, one memstore OSD, no mgr) and its RADOS Gateway,
# everything (config, keyrings, data, logs, pids) in one directory, every daemon on 127.0.0.1.
#
#   scripts/s3-server.sh install      apt-get installs radosgw, ceph-mon, ceph-osd, ceph-common if missing
#   scripts/s3-server.sh start DIR    starts it in DIR (made if missing), waits until S3 answers, writes DIR/env
#                                     (TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY, TEST_S3_SECRET_KEY, shell syntax) and
#                                     prints it; exit 1 with one line on stderr when it cannot start
#   scripts/s3-server.sh stop DIR     stops the daemons started in DIR (by the pids it wrote) and removes DIR
#
# Why Ceph and these settings: ../shared/S3-TEST-SERVER.md (s3rver checks no signature and breaks pagination on
# Node 20; MinIO is not packaged in Debian). Objects are held in memory: a few thousand small ones are fine.
set -euo pipefail

log() { printf '[s3-server] %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

install_packages() {
  if command -v radosgw >/dev/null && command -v ceph-mon >/dev/null && command -v ceph-osd >/dev/null && command -v ceph >/dev/null; then
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "radosgw/ceph-mon/ceph-osd are missing and installing them needs root"
  log "installing radosgw ceph-mon ceph-osd ceph-common (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd ceph-common >&2
}

# A TCP port nobody listens on now, picked at random from a range no ephemeral port comes from by default.
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 12000))
    if ! (: </dev/tcp/127.0.0.1/$p) 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

wait_until() { # seconds command...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

start() {
  local dir="$1"
  command -v radosgw >/dev/null || die "radosgw is not installed (scripts/s3-server.sh install)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local fsid mon_port rgw_port ms_min osd_uuid access secret
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  osd_uuid="$(cat /proc/sys/kernel/random/uuid)"
  mon_port="$(free_port)"
  rgw_port="$(free_port)"
  ms_min="$(free_port)"
  access="TESTKEY$(od -An -N7 -tx1 /dev/urandom | tr -d ' \n' | tr a-f A-F)"
  secret="$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"
  mkdir -p "$dir"/{mon,osd/ceph-0,run,log,rgw}
  cat >"$dir/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind port min = $ms_min
ms bind port max = $((ms_min + 20))
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$cluster-\$name.asok
log file = $dir/log/\$name.log
pid file = $dir/run/\$name.pid
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
paxos propose interval = 0.05
paxos min wait = 0.01
[mon]
mon data = $dir/mon/\$cluster-\$id
[osd]
osd objectstore = memstore
osd data = $dir/osd/\$cluster-\$id
osd max object name len = 460
osd max object namespace len = 64
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $dir/rgw
rgw dns name = 127.0.0.1
EOF
  local conf=(-c "$dir/ceph.conf")
  ceph-authtool --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *' --cap mgr 'allow profile osd' >/dev/null
  ceph-authtool "$dir/keyring" --gen-key -n client.rgw --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw' >/dev/null
  monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" "$dir/monmap" >/dev/null
  ceph-mon "${conf[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" >/dev/null 2>&1 || die "ceph-mon --mkfs failed (see $dir/log)"
  ceph-mon "${conf[@]}" -f -i a >"$dir/log/mon.out" 2>&1 &
  echo $! >"$dir/pids"
  wait_until 20 timeout 5 ceph "${conf[@]}" -s || die "the Ceph monitor did not answer within 20 s (see $dir/log)"
  ceph "${conf[@]}" osd new "$osd_uuid" 0 >/dev/null
  ceph-osd "${conf[@]}" -i 0 --mkfs --osd-uuid "$osd_uuid" >"$dir/log/osd-mkfs.out" 2>&1 || die "ceph-osd --mkfs failed (see $dir/log)"
  ceph-osd "${conf[@]}" -f -i 0 >"$dir/log/osd.out" 2>&1 &
  echo $! >>"$dir/pids"
  osd_up() { ceph "${conf[@]}" osd stat 2>/dev/null | grep -q '1 up'; }
  wait_until 30 osd_up || die "the OSD did not come up within 30 s (see $dir/log)"
  radosgw "${conf[@]}" -f -n client.rgw >"$dir/log/rgw.out" 2>&1 &
  echo $! >>"$dir/pids"
  wait_until 60 bash -c ": </dev/tcp/127.0.0.1/$rgw_port" || die "radosgw did not listen on 127.0.0.1:$rgw_port within 60 s (see $dir/log)"
  radosgw-admin "${conf[@]}" -n client.admin user create --uid=test --display-name=test --access-key="$access" --secret-key="$secret" >/dev/null 2>&1 ||
    die "radosgw-admin user create failed"
  cat >"$dir/env" <<EOF
TEST_S3_ENDPOINT=http://127.0.0.1:$rgw_port
TEST_S3_ACCESS_KEY=$access
TEST_S3_SECRET_KEY=$secret
EOF
  cat "$dir/env"
}

stop() {
  local dir="$1" pid
  [[ -d "$dir" ]] || return 0
  if [[ -f "$dir/pids" ]]; then
    # radosgw first, the monitor last (the others wait for it when it goes first).
    for pid in $(tac "$dir/pids"); do kill "$pid" 2>/dev/null || true; done
    for pid in $(cat "$dir/pids"); do
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    done
  fi
  [[ -n "${KEEP:-}" ]] || rm -rf "$dir"
}

case "${1:-}" in
  install) install_packages ;;
  start)
    [[ -n "${2:-}" ]] || die "usage: $0 start DIR"
    # Half-started daemons are stopped when start fails.
    S3_DIR="$2"
    trap 'rc=$?; if ((rc != 0)); then tail -n 5 "$S3_DIR"/log/*.out >&2 2>/dev/null || true; stop "$S3_DIR" 2>/dev/null || true; fi' EXIT
    start "$S3_DIR"
    ;;
  stop)
    [[ -n "${2:-}" ]] || die "usage: $0 stop DIR"
    stop "$2"
    ;;
  *) die "usage: $0 install | start DIR | stop DIR" ;;
esac
