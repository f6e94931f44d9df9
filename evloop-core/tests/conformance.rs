//! The core loop's conformance suite, run once per backend.
//!
//! Every test in `suite/` is a generic function over `B: Backend`. The macro below
//! instantiates each of them in one module per backend the target has, so the test
//! names say which backend they ran under (`epoll_suite::read_fires_while_unread`,
//! `uring_suite::...`, `poll_suite::...`, `select_suite::...`, `kqueue_suite::...`, `event_ports_suite::...`,
//! `devpoll_suite::...`), as libevent's test.sh runs its whole regression suite under
//! each backend in turn. Adding a backend is one module at the end.
//!
//! The behaviours the suite checks are listed in `tests/README.md` (registration and
//! readiness, handlers changing the loop, timers, loop control, priorities, activation,
//! introspection and resources). Signals, fork and allocation counting have their own
//! test files; calling `run` from inside a handler does not compile (a UI test).
//!
//! Tests listed under `exclusive` count open fds or depend on fd numbers staying closed
//! or free; they run alone, every other test runs alongside the rest. Tests listed under
//! `turns_counted` assert what one turn of the loop does; they run like `shared` ones,
//! except under fault injection (`fault_epoll_suite`), where they are ignored.

mod suite;

macro_rules! conformance_tests {
    ($backend:ty) => {
        conformance_tests! { @emit plain $backend; }
    };
    (faults $backend:ty) => {
        conformance_tests! { @emit faults $backend; }
    };
    (@emit $mode:ident $backend:ty;) => {
        conformance_tests! { @emit $mode $backend;
            shared: [
                io::read_fires_while_unread,
                io::write_fires_with_buffer_space,
                io::oneshot_disarms_after_first_dispatch,
                io::oneshot_rearmed_in_own_handler,
                io::several_sources_on_one_fd,
                io::combined_source_reports_what_fired,
                io::readiness_and_timeout_coincide_in_one_dispatch,
                io::peer_close_after_data_tcp,
                io::peer_shutdown_write_detected,
                io::write_to_closed_peer_is_an_error,
                io::many_ready_fds_with_small_event_buffer,
                handlers_changing_loop::removed_ready_source_is_not_dispatched,
                handlers_changing_loop::stopped_ready_source_is_not_dispatched,
                handlers_changing_loop::first_of_two_removes_the_other,
                handlers_changing_loop::first_of_two_stops_the_other,
                handlers_changing_loop::handler_removes_and_readds_itself,
                handlers_changing_loop::handler_removes_and_readds_another,
                handlers_changing_loop::del_add_del_in_one_pass_fires_nothing,
                handlers_changing_loop::stop_start_stop_in_one_pass_fires_nothing,
                timers::one_shot_timer_fires_once,
                timers::periodic_timer_fires_every_period,
                timers::io_timeout_reset_by_activity,
                timers::stalled_periodic_timer_fires_once_with_count,
                timers::timer_never_fires_early,
                timers::many_equal_duration_timers,
                timers::random_timer_churn,
                timers::cached_now_is_stable_within_an_iteration,
                control::run_until_empty,
                control::stays_when_empty_if_told_to,
                control::run_once_blocks_then_dispatches_all_ready,
                control::run_nowait_never_blocks,
                control::exit_lets_the_iteration_finish,
                control::exit_after_lets_the_iteration_finish,
                control::break_stops_after_the_current_handler,
                priorities::ready_sources_run_most_urgent_first,
                priorities::later_activation_with_higher_priority_runs_first,
                priorities::default_and_invalid_priorities,
                activation::activation_from_a_handler,
                activation::activation_from_another_thread,
                activation::wakes_from_other_threads_coalesce,
                slab::new_occupant_never_gets_old_events,
                slab::insert_lookup_remove,
                introspection::source_count_tracks_every_kind,
                introspection::dump_lists_every_source,
                errors::negative_fd_is_refused,
                errors::stale_source_id_is_refused,
                errors::stale_key_is_refused,
                errors::full_slab_is_refused,
                errors::full_source_table_is_refused,
                errors::timer_capacity_is_enforced,
                errors::wrong_kind_is_refused,
                errors::activation_queue_full_is_refused,
            ]
            exclusive: [
                io::fd_closed_while_registered_does_not_spin,
                errors::closed_fd_is_refused,
            ]
            // Unix only, each for its reason (the Windows backend runs everything else):
            // Unix domain sockets; `pollable_fd` (a Unix API); select's fd limit; fd-number
            // reuse through `dup2`; counting the process's open fds.
            unix_shared: [
                io::peer_close_after_data_unix,
                control::pollable_fd_signals_pending_events,
            ]
            unix_exclusive: [
                io::fd_reuse_after_dup_close_dup2,
                errors::fd_beyond_backend_limit,
                resources::dropping_the_loop_closes_what_it_owns,
                resources::no_fd_leak_over_1000_connections,
            ]
            // What one turn of the loop does: that it waited its whole timeout, or how
            // few turns dispatched nothing. A spurious wake-up changes exactly that, so
            // under fault injection these are reported as ignored (see `fault_epoll_suite`).
            turns_counted: [
                timers::huge_timeouts_never_fire_or_overflow,
                timers::sub_millisecond_timeouts_do_not_spin,
                control::poll_step_returns_dispatch_count,
            ]
        }
    };
    (@emit $mode:ident $backend:ty;
        shared: [$($sarea:ident :: $sname:ident),* $(,)?]
        exclusive: [$($earea:ident :: $ename:ident),* $(,)?]
        unix_shared: [$($usarea:ident :: $usname:ident),* $(,)?]
        unix_exclusive: [$($uearea:ident :: $uename:ident),* $(,)?]
        turns_counted: [$($carea:ident :: $cname:ident),* $(,)?]
    ) => {
        $(
            #[cfg(unix)]
            #[test]
            fn $usname() {
                crate::suite::util::run(
                    concat!(stringify!($usarea), "::", stringify!($usname)),
                    false,
                    crate::suite::$usarea::$usname::<$backend>,
                );
            }
        )*
        $(
            #[cfg(unix)]
            #[test]
            fn $uename() {
                crate::suite::util::run(
                    concat!(stringify!($uearea), "::", stringify!($uename)),
                    true,
                    crate::suite::$uearea::$uename::<$backend>,
                );
            }
        )*
        $(
            #[test]
            fn $sname() {
                crate::suite::util::run(
                    concat!(stringify!($sarea), "::", stringify!($sname)),
                    false,
                    crate::suite::$sarea::$sname::<$backend>,
                );
            }
        )*
        $(
            #[test]
            fn $ename() {
                crate::suite::util::run(
                    concat!(stringify!($earea), "::", stringify!($ename)),
                    true,
                    crate::suite::$earea::$ename::<$backend>,
                );
            }
        )*
        $(
            conformance_tests! { @counted $mode $backend; $carea :: $cname }
        )*
    };
    (@counted plain $backend:ty; $area:ident :: $name:ident) => {
        #[test]
        fn $name() {
            crate::suite::util::run(
                concat!(stringify!($area), "::", stringify!($name)),
                false,
                crate::suite::$area::$name::<$backend>,
            );
        }
    };
    (@counted faults $backend:ty; $area:ident :: $name:ident) => {
        #[test]
        #[ignore = "counts what one turn of the loop does; injected spurious wake-ups end turns early"]
        fn $name() {
            crate::suite::util::run(
                concat!(stringify!($area), "::", stringify!($name)),
                false,
                crate::suite::$area::$name::<$backend>,
            );
        }
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll_suite {
    conformance_tests!(evloop_core::Epoll);
}

#[cfg(target_os = "linux")]
mod uring_suite {
    conformance_tests!(evloop_core::Uring);
}

#[cfg(unix)]
mod poll_suite {
    conformance_tests!(evloop_core::Poll);
}

#[cfg(unix)]
mod select_suite {
    conformance_tests!(evloop_core::Select);
}

#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "visionos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue_suite {
    conformance_tests!(evloop_core::Kqueue);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod event_ports_suite {
    conformance_tests!(evloop_core::EventPorts);
}

#[cfg(any(target_os = "illumos", target_os = "solaris"))]
mod devpoll_suite {
    conformance_tests!(evloop_core::DevPoll);
}

/// The whole suite under epoll with injected faults (`evloop_backends::fault`, the
/// `fault-injection` feature): EINTR and spurious wake-ups in every wait, at the rate and
/// seed of `EVLOOP_FAULT_RATE` and `EVLOOP_FAULT_SEED` (`.ci/faults`). Every test must hold
/// as it is, except the three `turns_counted` ones, which assert what a single turn of the
/// loop does and are reported as ignored here.
#[cfg(all(
    feature = "fault-injection",
    any(target_os = "linux", target_os = "android")
))]
mod fault_epoll_suite {
    conformance_tests!(faults evloop_backends::fault::FaultInjecting<evloop_core::Epoll>);
}

#[cfg(windows)]
mod afd_suite {
    conformance_tests!(evloop_core::Afd);
}
