/*
 * main.c - command line, configuration assembly, start-up and reload
 *
 * DESCRIPTION  Builds the configuration from built-in defaults, the -c
 *              file and the command-line overrides (which win), validates
 *              all of it, then hands it to the server.  SIGHUP repeats the
 *              same assembly and swaps the result in only when it is valid.
 * ERRORS       Configuration errors: every one printed, exit 2.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "conf.h"
#include "events.h"
#include "fault.h"
#include "log.h"
#include "main.h"
#include "report.h"
#include "server.h"
#include "tlsio.h"
#include "util.h"
#include "version.h"


struct override {
	const char	*section, *key;
	char		*val;
};

static struct override	 ovr[32];
static int		 novr;
static const char	*conf_path;
static char		*scenario_arg;	/* -s, or the control API's choice */
static char		 exe_path[4096];

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: smtpfault [options]\n"
"       smtpfault report [options] EVENTS_FILE|-   (see: smtpfault report -h)\n"
"  -c, --config FILE      configuration file (INI)\n"
"  -s, --scenario NAME|FILE  fault scenario: a shipped name (conf/scenarios)\n"
"                         or an INI file with [rule NAME] sections\n"
"      --seed N           seed of the fault generator (default: from clock)\n"
"      --listen ADDR:PORT SMTP listener; repeatable; [V6]:PORT for IPv6,\n"
"                         port 0 = any free port (default 127.0.0.1:2525)\n"
"      --listen-tls ADDR:PORT  implicit-TLS (SMTPS) listener; repeatable\n"
"      --port-file FILE   write \"smtp ADDR:PORT\" per listener once bound\n"
"                         (\"smtps ADDR:PORT\" for implicit TLS)\n"
"      --tls-ca-out FILE  write the CA of the generated certificate (PEM)\n"
"      --control ADDR:PORT  HTTP control API and /metrics (loopback)\n"
"      --events FILE|-    event stream, JSON lines (default -: stdout)\n"
"      --capture DIR      keep accepted messages in a Maildir\n"
"      --hostname NAME    name in the banner and replies\n"
"      --check-config     validate the configuration and exit\n"
"      --dump-config      print every key at its default and exit\n"
"  -v, --verbose          debug diagnostics on stderr\n"
"      --version          print the version and exit\n"
"  -h, --help             this text\n"
"Command-line values override the file.  See smtpfault(1).\n");
}

static void
add_override(const char *section, const char *key, const char *val)
{
	int i;

	for (i = 0; i < novr; i++) {
		if (strcmp(ovr[i].section, section) == 0 &&
		    strcmp(ovr[i].key, key) == 0) {
			if (strcmp(key, "listen") == 0 ||
			    strcmp(key, "tls_listen") == 0) {
				char *j;

				if (asprintf(&j, "%s,%s", ovr[i].val, val) ==
				    -1)
					fatal("asprintf");
				free(ovr[i].val);
				ovr[i].val = j;
			} else {
				free(ovr[i].val);
				ovr[i].val = xstrdup(val);
			}
			return;
		}
	}
	if (novr == (int)NELEM(ovr))
		fatalx("too many options");
	ovr[novr].section = section;
	ovr[novr].key = key;
	ovr[novr].val = xstrdup(val);
	novr++;
}

/* Defaults, then the file, then the command line.  NULL on any error. */
static struct conf *
assemble(struct conf_errs *errs)
{
	struct conf *c = conf_new();
	int i;

	if (conf_path != NULL)
		conf_load(c, conf_path, errs);
	if (scenario_arg != NULL) {
		free(c->scenario);
		c->scenario = xstrdup(scenario_arg);
	}
	if (errs->n == 0 && c->scenario != NULL && c->scenario[0] != '\0') {
		char *path = conf_find_scenario(c, c->scenario, exe_path);

		if (path == NULL) {
			conf_errs_add(errs, "scenario \"%s\": no such file, and "
			    "no %s.ini in %s or conf/scenarios", c->scenario,
			    c->scenario, c->scenario_dir);
		} else {
			free(c->scenario_file);
			c->scenario_file = path;
			conf_load(c, path, errs);
			/* the scenario names itself only through its file */
			free(c->file);
			c->file = conf_path ? xstrdup(conf_path) : NULL;
		}
	}
	for (i = 0; i < novr; i++)
		conf_set(c, ovr[i].section, ovr[i].key, ovr[i].val, errs);
	conf_check(c, errs);
	if (errs->n > 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

static int
apply_outputs(struct conf *c)
{
	if (evt_open(c->events_file, (size_t)c->events_max_arg) == -1) {
		log_warn("events: %s", c->events_file);
		return -1;
	}
	if (c->capture_dir != NULL && c->capture_dir[0] != '\0' &&
	    capture_prepare(c->capture_dir) == -1) {
		log_warn("capture: %s", c->capture_dir);
		return -1;
	}
	return 0;
}

/*
 * Swap the running configuration for c (assembled and valid).  Returns 0,
 * or -1 when its outputs could not be opened (c is then freed and the old
 * configuration keeps running).
 */
static int
swap_conf(struct conf *c)
{
	if (c->nlisten != srv.cf->nlisten ||
	    memcmp(c->listen, srv.cf->listen, sizeof(c->listen)) != 0)
		log_warnx("reload: listener changes need a restart");
	if (strcmp(c->state_dir, srv.cf->state_dir) != 0)
		log_warnx("reload: a new state_dir needs a restart");
	if (strcmp(c->tls_cert, srv.cf->tls_cert) != 0 ||
	    strcmp(c->tls_key, srv.cf->tls_key) != 0 ||
	    strcmp(c->tls_min_version, srv.cf->tls_min_version) != 0 ||
	    strcmp(c->tls_max_version, srv.cf->tls_max_version) != 0 ||
	    strcmp(c->tls_ciphers, srv.cf->tls_ciphers) != 0)
		log_warnx("reload: TLS certificate and protocol changes need "
		    "a restart");
	if (apply_outputs(c) == -1) {
		conf_free(c);
		apply_outputs(srv.cf);
		return -1;
	}
	if (c->seed[0] != '\0' && strcmp(c->seed, srv.cf->seed) != 0)
		fault_seed(strtoull(c->seed, NULL, 10));
	conf_free(srv.cf);
	srv.cf = c;
	fault.gl_stage = strcmp(c->gl_stage, "data_end") == 0 ? FH_DATA_END :
	    FH_RCPT;
	return 0;
}

static void
evt_reload(int ok, const char *via)
{
	evt_begin("reload");
	evt_bool("ok", ok);
	evt_str("via", via);
	evt_str("file", conf_path);
	evt_str("scenario", ok ? srv.cf->scenario_file : NULL);
	evt_int("rules", (long long)srv.cf->scn->n);
	evt_end();
}

static void
reload(void)
{
	struct conf_errs errs = { NULL, 0 };
	struct conf *c = assemble(&errs);
	int ok = c != NULL && swap_conf(c) == 0;

	if (c == NULL) {
		conf_errs_print(&errs, stderr);
		log_warnx("reload failed; keeping the running configuration");
	}
	evt_reload(ok, "SIGHUP");
	conf_errs_free(&errs);
	log_info("reload %s", ok ? "done" : "failed");
}

int
main_use_scenario(const char *scenario, struct conf_errs *errs)
{
	char *old = scenario_arg;
	struct conf *c;

	scenario_arg = xstrdup(scenario);
	if ((c = assemble(errs)) == NULL || swap_conf(c) == -1) {
		if (c != NULL)
			conf_errs_add(errs, "cannot open the event stream or "
			    "capture directory");
		free(scenario_arg);
		scenario_arg = old;
		evt_reload(0, "api");
		return -1;
	}
	free(old);
	evt_reload(1, "api");
	return 0;
}

int
main(int argc, char *argv[])
{
	enum { O_LISTEN = 256, O_PORTFILE, O_EVENTS, O_CAPTURE, O_HOSTNAME,
	    O_CHECK, O_VERSION, O_DUMP, O_SEED, O_LISTEN_TLS, O_CA_OUT,
	    O_CONTROL };
	static const struct option lopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "scenario", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, O_SEED },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "listen-tls", required_argument, NULL, O_LISTEN_TLS },
		{ "tls-ca-out", required_argument, NULL, O_CA_OUT },
		{ "control", required_argument, NULL, O_CONTROL },
		{ "port-file", required_argument, NULL, O_PORTFILE },
		{ "events", required_argument, NULL, O_EVENTS },
		{ "capture", required_argument, NULL, O_CAPTURE },
		{ "hostname", required_argument, NULL, O_HOSTNAME },
		{ "check-config", no_argument, NULL, O_CHECK },
		{ "dump-config", no_argument, NULL, O_DUMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, O_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct conf_errs errs = { NULL, 0 };
	const char *port_file = NULL;
	int ch, check = 0, i;
	struct conf *cf;
	char ferr[512];
	uint64_t seed;
	ssize_t n;

	if (argc > 1 && strcmp(argv[1], "report") == 0)
		return report_main(argc - 1, argv + 1);
	if ((n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1)) >
	    0)
		exe_path[n] = '\0';
	else
		snprintf(exe_path, sizeof(exe_path), "%s", argv[0]);
	while ((ch = getopt_long(argc, argv, "c:s:vh", lopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 's':
			free(scenario_arg);
			scenario_arg = xstrdup(optarg);
			break;
		case O_SEED:
			add_override("faults", "seed", optarg);
			break;
		case O_LISTEN:
			add_override("server", "listen", optarg);
			break;
		case O_LISTEN_TLS:
			add_override("server", "tls_listen", optarg);
			break;
		case O_CA_OUT:
			add_override("tls", "ca_out", optarg);
			break;
		case O_CONTROL:
			add_override("control", "listen", optarg);
			break;
		case O_PORTFILE:
			port_file = optarg;
			break;
		case O_EVENTS:
			add_override("events", "file", optarg);
			break;
		case O_CAPTURE:
			add_override("capture", "dir", optarg);
			break;
		case O_HOSTNAME:
			add_override("server", "hostname", optarg);
			break;
		case O_CHECK:
			check = 1;
			break;
		case O_DUMP:
			conf_dump_defaults(stdout);
			return 0;
		case 'v':
			log_verbose = 1;
			break;
		case O_VERSION:
			printf("smtpfault %s\n", SMTPFAULT_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "smtpfault: unexpected argument: %s\n",
		    argv[optind]);
		usage(stderr);
		return 2;
	}
	if ((cf = assemble(&errs)) == NULL) {
		conf_errs_print(&errs, stderr);
		fprintf(stderr, "smtpfault: %d configuration error%s\n", errs.n,
		    errs.n == 1 ? "" : "s");
		conf_errs_free(&errs);
		return 2;
	}
	if (tlsio_init(cf, ferr, sizeof(ferr)) == -1) {
		fprintf(stderr, "smtpfault: TLS: %s\n", ferr);
		conf_free(cf);
		return 2;
	}
	if (check) {
		printf("configuration OK\n");
		tlsio_free();
		conf_free(cf);
		return 0;
	}
	if (cf->tls_ca_out[0] != '\0' && tlsio_write_ca(cf->tls_ca_out) == -1) {
		fprintf(stderr, "smtpfault: [tls] ca_out = %s: %s\n",
		    cf->tls_ca_out, strerror(errno));
		tlsio_free();
		conf_free(cf);
		return 2;
	}
	seed = cf->seed[0] ? strtoull(cf->seed, NULL, 10) : fault_clock_seed();
	fault.gl_stage = strcmp(cf->gl_stage, "data_end") == 0 ? FH_DATA_END :
	    FH_RCPT;
	if (fault_init(cf->state_dir, seed, (int)cf->v4_netmask,
	    (int)cf->v6_netmask, ferr, sizeof(ferr)) == -1) {
		fprintf(stderr, "smtpfault: [faults] state_dir: %s\n", ferr);
		conf_free(cf);
		return 2;
	}
	if (apply_outputs(cf) == -1) {
		conf_free(cf);
		return 2;
	}
	if (cf->has_control)
		evt_ring_init((size_t)cf->control_ring, NULL);
	evt_begin("start");
	evt_str("version", SMTPFAULT_VERSION);
	evt_int("pid", (long long)getpid());
	evt_str("hostname", cf->hostname);
	evt_uint("seed", seed);
	evt_str("scenario", cf->scenario_file);
	evt_int("rules", (long long)cf->scn->n);
	evt_str("state", store_kind(fault.st));
	evt_end();
	log_info("seed %llu, scenario %s (%zu rules), state %s",
	    (unsigned long long)seed, cf->scenario_file ? cf->scenario_file :
	    "none", cf->scn->n, cf->state_dir[0] ? cf->state_dir : "in memory");
	srv.reload = reload;
	if (server_init(cf, port_file) == -1) {
		evt_flush();
		server_free();
		conf_free(cf);
		evt_close();
		return 2;
	}
	log_info("smtpfault %s ready, pid %ld", SMTPFAULT_VERSION,
	    (long)getpid());
	server_run();
	server_free();
	tlsio_free();
	fault_close();
	conf_free(srv.cf);
	evt_close();
	for (i = 0; i < novr; i++)
		free(ovr[i].val);
	free(scenario_arg);
	return 0;
}
