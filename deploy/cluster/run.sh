#!/usr/bin/env bash
# make cluster: the deployment the cluster test (TestCluster, make
# cluster-test) runs, on this machine, for trying it by hand: three
# nats-server processes clustered on loopback (built from go.mod's
# nats-server dependency), each with a store of its own and the users of
# deploy/nats/jackalope.conf, then the installer (SQLite), two ingest
# replicas and three dispatchers, each signed in as its own NATS user, with
# all three NATS URLs and STREAM_REPLICAS=3. Ctrl-C stops everything; the
# stores, keys and logs stay in CLUSTER_DIR for the next start.
#
# Settings (environment):
#   CLUSTER_DIR   where everything goes (./.cluster)
#   NATS_PORT     first of six ports: clients NATS_PORT..+2, routes +3..+5 (4251)
#   HTTP_PORT     installer HTTP_PORT, ingest +1 and +2 (4257)
#   METRICS_PORT  /healthz, /readyz, /metrics: installer, ingest x2, dispatcher x3 (19251..19256)
#   SLACK_WEBHOOK_HOSTS, SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, SERVER_NAME: as in README.md
#
# Then add a channel by hand (it prints the command) and post an event to
# either ingest replica; kill a node (kill -9 $(cat CLUSTER_DIR/n1/pid)) and
# start it again with the line this script prints, to watch the cluster
# carry on.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
dir=${CLUSTER_DIR:-$root/.cluster}
nats_port=${NATS_PORT:-4251}
http_port=${HTTP_PORT:-4257}
metrics_port=${METRICS_PORT:-19251}
mkdir -p "$dir/bin" "$dir/logs"
dir=$(cd "$dir" && pwd)

log() { printf '=== %s\n' "$*"; }

log "building the commands and nats-server into $dir/bin"
go build -o "$dir/bin/" ./cmd/jackalope ./cmd/installer ./cmd/ingest ./cmd/dispatcher
go build -o "$dir/bin/nats-server" github.com/nats-io/nats-server/v2

log "NATS users (kept if there): $dir/creds"
"$dir/bin/jackalope" nats-creds "$dir/creds" >/dev/null
if [ ! -s "$dir/secret_key" ]; then
	(umask 077 && openssl rand -hex 32 >"$dir/secret_key")
fi

pids=()
stop() {
	trap - INT TERM EXIT
	log "stopping"
	# The services first, then the nodes: each in reverse order of start.
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

wait_for() { # what, command...: up to 60 s
	local what=$1
	shift
	for _ in $(seq 120); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.5
	done
	echo "FATAL: $what did not come up; see $dir/logs" >&2
	return 1
}

routes=""
urls=""
for i in 0 1 2; do
	routes+="${routes:+, }\"nats-route://127.0.0.1:$((nats_port + 3 + i))\""
	urls+="${urls:+,}nats://127.0.0.1:$((nats_port + i))"
done

start_node() { # name, index
	local name=$1 i=$2
	mkdir -p "$dir/$name"
	cp deploy/nats/jackalope.conf "$dir/$name/jackalope.conf"
	cat >"$dir/$name/server.conf" <<-EOF
		# Written by deploy/cluster/run.sh: node $name of the loopback cluster.
		server_name: $name
		listen: 127.0.0.1:$((nats_port + i))
		max_payload: 8MB
		jetstream { store_dir: "$dir/$name/store" }
		cluster {
		  name: jackalope
		  listen: 127.0.0.1:$((nats_port + 3 + i))
		  routes: [$routes]
		}
		include ./jackalope.conf
	EOF
	(
		set -a
		. "$dir/creds/server/nkeys.env"
		exec "$dir/bin/nats-server" -c "$dir/$name/server.conf" -P "$dir/$name/pid"
	) >>"$dir/logs/$name.log" 2>&1 &
	pids+=($!)
}

log "NATS cluster: $urls"
for i in 0 1 2; do start_node "n$((i + 1))" "$i"; done
for i in 0 1 2; do
	wait_for "n$((i + 1))" bash -c "exec 3<>/dev/tcp/127.0.0.1/$((nats_port + i))"
done

common=(
	"NATS_URL=$urls"
	"STREAM_REPLICAS=3"
	"SECRET_KEY=$(cat "$dir/secret_key")"
	"SERVER_NAME=${SERVER_NAME:-http://127.0.0.1:$http_port}"
	"SLACK_WEBHOOK_HOSTS=${SLACK_WEBHOOK_HOSTS:-hooks.slack.com}"
	"SLACK_CLIENT_ID=${SLACK_CLIENT_ID:-}"
	"SLACK_CLIENT_SECRET=${SLACK_CLIENT_SECRET:-}"
)
installer_env=("${common[@]}" "NATS_NKEY=$dir/creds/installer/nats.nk" "DATA_DIR=$dir/installer"
	"LISTEN_ADDR=127.0.0.1:$http_port" "METRICS_ADDR=127.0.0.1:$metrics_port")
mkdir -p "$dir/installer"
printf '%s\n' "${installer_env[@]}" >"$dir/installer.env"
chmod 600 "$dir/installer.env"

service() { # name, metrics port, environment...
	local name=$1 port=$2
	shift 2
	env -i PATH="$PATH" HOME="$HOME" "$@" "$dir/bin/${name%-*}" >>"$dir/logs/$name.log" 2>&1 &
	pids+=($!)
	wait_for "$name" curl -fsS "http://127.0.0.1:$port/readyz"
}

log "installer: http://127.0.0.1:$http_port (SQLite in $dir/installer)"
service installer "$metrics_port" "${installer_env[@]}"
for i in 1 2; do
	log "ingest-$i: http://127.0.0.1:$((http_port + i))/jamf/<token>"
	service "ingest-$i" "$((metrics_port + i))" "${common[@]}" "NATS_NKEY=$dir/creds/ingest/nats.nk" \
		"LISTEN_ADDR=127.0.0.1:$((http_port + i))" "METRICS_ADDR=127.0.0.1:$((metrics_port + i))"
done
for i in 1 2 3; do
	log "dispatcher-$i: metrics on http://127.0.0.1:$((metrics_port + 2 + i))/metrics"
	service "dispatcher-$i" "$((metrics_port + 2 + i))" "${common[@]}" "NATS_NKEY=$dir/creds/dispatcher/nats.nk" \
		"METRICS_ADDR=127.0.0.1:$((metrics_port + 2 + i))"
done

cat <<EOF

The cluster and the services run; logs in $dir/logs. Add a channel by hand:
  env \$(cat $dir/installer.env) $dir/bin/installer channels add --webhook-url https://hooks.slack.com/services/... --channel '#jamf'
and post to http://127.0.0.1:$((http_port + 1))/jamf/<token> or :$((http_port + 2)).
Kill a node:           kill -9 \$(cat $dir/n1/pid)
Start it again:        (set -a; . $dir/creds/server/nkeys.env; $dir/bin/nats-server -c $dir/n1/server.conf -P $dir/n1/pid >>$dir/logs/n1.log 2>&1 &)
Ctrl-C stops everything.
EOF
wait
