//! Where to look instead when kprobes or kfuncs do not attach: kernel
//! functions mapped to the tracepoints (or software events) that observe the
//! same thing. Data only; `probe_support` keeps the entries that exist on
//! the kernel at hand, and adds two rules of its own (a tracepoint with the
//! function's name, and the syscall tracepoint behind a syscall wrapper).

/// Kernel functions and the probes that see the same events.
#[derive(Clone, Copy, Debug)]
pub struct FunctionAlternatives {
    /// Function names, with bpftrace wildcards (`tcp_*`).
    pub functions: &'static [&'static str],
    /// Probes to use instead, most specific first. For return probes
    /// (`kretprobe`, `kretfunc`) `sys_enter_` becomes `sys_exit_`.
    pub probes: &'static [&'static str],
    /// What the alternatives give, in a few words.
    pub note: &'static str,
}

macro_rules! alt {
    ([$($f:expr),* $(,)?], [$($p:expr),* $(,)?], $note:expr) => {
        FunctionAlternatives { functions: &[$($f),*], probes: &[$($p),*], note: $note }
    };
}

/// The table, most specific entries first; every matching entry contributes.
pub const FUNCTION_ALTERNATIVES: &[FunctionAlternatives] = &[
    alt!(
        [
            "do_sys_open*",
            "do_sys_openat2",
            "vfs_open",
            "do_filp_open",
            "path_openat",
            "*_file_open",
            "do_dentry_open"
        ],
        [
            "tracepoint:syscalls:sys_enter_openat",
            "tracepoint:syscalls:sys_enter_open",
            "tracepoint:syscalls:sys_enter_openat2"
        ],
        "files being opened"
    ),
    alt!(
        ["xfs_file_read_iter"],
        [
            "tracepoint:xfs:xfs_file_buffered_read",
            "tracepoint:xfs:xfs_file_direct_read"
        ],
        "XFS reads"
    ),
    alt!(
        ["xfs_file_write_iter"],
        [
            "tracepoint:xfs:xfs_file_buffered_write",
            "tracepoint:xfs:xfs_file_direct_write"
        ],
        "XFS writes"
    ),
    alt!(
        [
            "vfs_read*",
            "*_file_read_iter",
            "new_sync_read",
            "ksys_read",
            "generic_file_read_iter",
            "filemap_read"
        ],
        [
            "tracepoint:syscalls:sys_enter_read",
            "tracepoint:syscalls:sys_enter_pread64",
            "tracepoint:syscalls:sys_enter_readv"
        ],
        "reads"
    ),
    alt!(
        [
            "vfs_write*",
            "*_file_write_iter",
            "new_sync_write",
            "ksys_write",
            "generic_file_write_iter"
        ],
        [
            "tracepoint:syscalls:sys_enter_write",
            "tracepoint:syscalls:sys_enter_pwrite64",
            "tracepoint:syscalls:sys_enter_writev"
        ],
        "writes"
    ),
    alt!(
        ["vfs_fsync*", "*_file_fsync", "do_fsync"],
        [
            "tracepoint:syscalls:sys_enter_fsync",
            "tracepoint:syscalls:sys_enter_fdatasync"
        ],
        "fsync calls"
    ),
    alt!(
        ["vfs_stat*", "vfs_fstat*", "vfs_getattr*", "vfs_statx*"],
        [
            "tracepoint:syscalls:sys_enter_newstat",
            "tracepoint:syscalls:sys_enter_statx",
            "tracepoint:syscalls:sys_enter_newfstatat"
        ],
        "stat calls"
    ),
    alt!(
        [
            "vfs_create",
            "vfs_mkdir",
            "vfs_unlink",
            "vfs_rmdir",
            "vfs_rename",
            "vfs_link",
            "vfs_symlink"
        ],
        [
            "tracepoint:syscalls:sys_enter_openat",
            "tracepoint:syscalls:sys_enter_mkdirat",
            "tracepoint:syscalls:sys_enter_unlinkat",
            "tracepoint:syscalls:sys_enter_renameat2"
        ],
        "file creation, removal and renaming"
    ),
    alt!(
        ["vfs_*"],
        ["tracepoint:raw_syscalls:sys_enter"],
        "every system call, one probe (filter on args->id)"
    ),
    alt!(
        [
            "lookup_fast*",
            "d_lookup",
            "__d_lookup*",
            "d_alloc*",
            "path_lookupat*",
            "filename_lookup"
        ],
        [
            "tracepoint:syscalls:sys_enter_openat",
            "tracepoint:syscalls:sys_enter_newstat",
            "tracepoint:syscalls:sys_enter_statx"
        ],
        "the path lookups behind opens and stats"
    ),
    alt!(
        [
            "tcp_connect",
            "tcp_v4_connect",
            "tcp_v6_connect",
            "__inet_stream_connect",
            "inet_stream_connect"
        ],
        [
            "tracepoint:sock:inet_sock_set_state",
            "tracepoint:syscalls:sys_enter_connect"
        ],
        "connections (state SYN_SENT), with addresses and ports"
    ),
    alt!(
        [
            "inet_csk_accept",
            "tcp_v4_syn_recv_sock",
            "tcp_v6_syn_recv_sock",
            "tcp_conn_request"
        ],
        [
            "tracepoint:sock:inet_sock_set_state",
            "tracepoint:syscalls:sys_exit_accept4",
            "tracepoint:tcp:tcp_retransmit_synack"
        ],
        "accepted connections (state changes), with addresses and ports"
    ),
    alt!(
        [
            "tcp_set_state",
            "tcp_close",
            "tcp_fin",
            "tcp_done",
            "inet_sk_set_state"
        ],
        [
            "tracepoint:sock:inet_sock_set_state",
            "tracepoint:tcp:tcp_destroy_sock"
        ],
        "TCP state changes, with addresses and ports"
    ),
    alt!(
        [
            "tcp_drop*",
            "kfree_skb*",
            "sk_skb_reason_drop",
            "tcp_v4_rcv",
            "tcp_rcv_*"
        ],
        [
            "tracepoint:skb:kfree_skb",
            "tracepoint:tcp:tcp_receive_reset",
            "tracepoint:tcp:tcp_bad_csum"
        ],
        "dropped packets, with the drop reason"
    ),
    alt!(
        [
            "tcp_sendmsg*",
            "tcp_push*",
            "__tcp_transmit_skb",
            "tcp_write_xmit",
            "inet_sendmsg",
            "sock_sendmsg"
        ],
        [
            "tracepoint:tcp:tcp_sendmsg_locked",
            "tracepoint:sock:sock_send_length",
            "tracepoint:syscalls:sys_enter_sendto"
        ],
        "data sent on sockets, with lengths"
    ),
    alt!(
        [
            "tcp_recvmsg*",
            "tcp_cleanup_rbuf",
            "inet_recvmsg",
            "sock_recvmsg",
            "tcp_read_sock"
        ],
        [
            "tracepoint:sock:sock_recv_length",
            "tracepoint:tcp:tcp_rcv_space_adjust",
            "tracepoint:syscalls:sys_enter_recvfrom"
        ],
        "data received on sockets, with lengths"
    ),
    alt!(
        [
            "tcp_*",
            "__tcp_*",
            "inet_*",
            "sk_*",
            "sock_*",
            "__sock_*",
            "security_socket_*"
        ],
        [
            "tracepoint:sock:inet_sock_set_state",
            "tracepoint:tcp:*",
            "tracepoint:sock:*"
        ],
        "TCP and socket events"
    ),
    alt!(
        ["udp_*", "__udp*", "udpv6_*"],
        [
            "tracepoint:syscalls:sys_enter_sendto",
            "tracepoint:syscalls:sys_enter_recvfrom",
            "tracepoint:sock:sock_send_length"
        ],
        "UDP traffic through its system calls"
    ),
    alt!(
        ["unix_*"],
        [
            "tracepoint:sock:sock_recv_length",
            "tracepoint:sock:sock_send_length",
            "tracepoint:syscalls:sys_enter_recvmsg"
        ],
        "socket reads and writes with their lengths"
    ),
    alt!(
        [
            "netif_rx*",
            "netif_receive_skb*",
            "__netif_receive_skb*",
            "napi_gro_receive",
            "dev_queue_xmit",
            "__dev_queue_xmit",
            "dev_hard_start_xmit"
        ],
        [
            "tracepoint:net:netif_rx",
            "tracepoint:net:netif_receive_skb",
            "tracepoint:net:net_dev_xmit"
        ],
        "packets received and sent"
    ),
    alt!(
        [
            "schedule",
            "__schedule",
            "schedule_*",
            "finish_task_switch*",
            "pick_next_task*",
            "context_switch"
        ],
        ["tracepoint:sched:sched_switch"],
        "context switches"
    ),
    alt!(
        [
            "try_to_wake_up",
            "ttwu_*",
            "wake_up_process",
            "wake_up_state",
            "__wake_up*"
        ],
        [
            "tracepoint:sched:sched_wakeup",
            "tracepoint:sched:sched_wakeup_new",
            "tracepoint:sched:sched_waking"
        ],
        "wakeups"
    ),
    alt!(
        [
            "wake_up_new_task",
            "_do_fork",
            "do_fork",
            "kernel_clone",
            "copy_process"
        ],
        [
            "tracepoint:sched:sched_process_fork",
            "tracepoint:sched:sched_wakeup_new"
        ],
        "new processes and threads"
    ),
    alt!(
        ["do_exit", "do_group_exit", "release_task"],
        [
            "tracepoint:sched:sched_process_exit",
            "tracepoint:sched:sched_process_free"
        ],
        "process exits"
    ),
    alt!(
        [
            "do_execve*",
            "do_execveat*",
            "bprm_execve",
            "exec_binprm",
            "search_binary_handler",
            "load_elf_binary"
        ],
        [
            "tracepoint:sched:sched_process_exec",
            "tracepoint:syscalls:sys_enter_execve"
        ],
        "program executions"
    ),
    alt!(
        [
            "sched_*",
            "enqueue_task*",
            "dequeue_task*",
            "update_curr*",
            "set_task_cpu",
            "migrate_task*"
        ],
        [
            "tracepoint:sched:sched_switch",
            "tracepoint:sched:sched_migrate_task",
            "tracepoint:sched:*"
        ],
        "scheduler events"
    ),
    alt!(
        ["blk_account_io_start", "__blk_account_io_start"],
        [
            "tracepoint:block:block_io_start",
            "tracepoint:block:block_rq_insert",
            "tracepoint:block:block_rq_issue"
        ],
        "block I/O requests as they start"
    ),
    alt!(
        ["blk_mq_start_request", "blk_start_request"],
        ["tracepoint:block:block_rq_issue"],
        "requests issued to the device driver"
    ),
    alt!(
        ["blk_mq_submit_bio", "submit_bio*", "__submit_bio*"],
        [
            "tracepoint:block:block_bio_queue",
            "tracepoint:block:block_rq_insert"
        ],
        "I/O submitted to the block layer"
    ),
    alt!(
        [
            "blk_account_io_done",
            "__blk_account_io_done",
            "blk_mq_end_request",
            "blk_update_request",
            "bio_endio"
        ],
        [
            "tracepoint:block:block_io_done",
            "tracepoint:block:block_rq_complete"
        ],
        "block I/O completions"
    ),
    alt!(
        ["md_flush_request", "blkdev_issue_flush", "submit_bio_wait"],
        [
            "tracepoint:block:block_rq_issue",
            "tracepoint:block:block_bio_queue"
        ],
        "block requests (flushes carry F in args->rwbs)"
    ),
    alt!(
        ["blk_*", "__blk_*", "bio_*", "blkdev_*", "*_queue_rq"],
        [
            "tracepoint:block:block_rq_issue",
            "tracepoint:block:block_rq_complete",
            "tracepoint:block:*"
        ],
        "block device events"
    ),
    alt!(
        [
            "oom_kill_process",
            "out_of_memory",
            "oom_badness",
            "__oom_kill_process"
        ],
        [
            "tracepoint:oom:mark_victim",
            "tracepoint:oom:oom_score_adj_update"
        ],
        "OOM kills"
    ),
    alt!(
        [
            "swap_readpage",
            "swap_read_folio",
            "swapin_readahead",
            "do_swap_page"
        ],
        [
            "software:major-faults:1",
            "tracepoint:exceptions:page_fault_user"
        ],
        "swap-ins, which are major page faults"
    ),
    alt!(
        ["swap_writepage", "swap_write*", "__swap_writepage"],
        ["tracepoint:vmscan:mm_vmscan_write_folio"],
        "pages written out by reclaim"
    ),
    alt!(
        [
            "handle_mm_fault",
            "do_page_fault",
            "exc_page_fault",
            "__do_page_fault",
            "do_user_addr_fault",
            "filemap_fault"
        ],
        [
            "tracepoint:exceptions:page_fault_user",
            "software:page-faults:1",
            "tracepoint:filemap:mm_filemap_fault"
        ],
        "page faults"
    ),
    alt!(
        [
            "__kmalloc*",
            "kmalloc*",
            "kmem_cache_alloc*",
            "kfree",
            "kmem_cache_free",
            "__get_free_pages",
            "alloc_pages*"
        ],
        [
            "tracepoint:kmem:kmalloc",
            "tracepoint:kmem:kfree",
            "tracepoint:kmem:kmem_cache_alloc",
            "tracepoint:kmem:mm_page_alloc"
        ],
        "kernel memory allocations"
    ),
    alt!(
        ["do_nanosleep", "hrtimer_nanosleep", "common_nsleep"],
        [
            "tracepoint:syscalls:sys_enter_nanosleep",
            "tracepoint:syscalls:sys_enter_clock_nanosleep"
        ],
        "sleeps"
    ),
    alt!(
        [
            "send_signal*",
            "__send_signal*",
            "do_send_sig_info",
            "kill_pid_info",
            "group_send_sig_info",
            "get_signal"
        ],
        [
            "tracepoint:signal:signal_generate",
            "tracepoint:signal:signal_deliver",
            "tracepoint:syscalls:sys_enter_kill"
        ],
        "signals sent and delivered"
    ),
    alt!(
        [
            "commit_creds",
            "prepare_creds",
            "override_creds",
            "__sys_set*id",
            "__sys_setres*id",
            "cap_capset"
        ],
        [
            "tracepoint:syscalls:sys_enter_setuid",
            "tracepoint:syscalls:sys_enter_setresuid",
            "tracepoint:syscalls:sys_enter_setgid",
            "tracepoint:syscalls:sys_enter_capset"
        ],
        "credential changes through their system calls"
    ),
    alt!(
        ["cap_capable", "ns_capable*", "capable", "security_capable"],
        ["tracepoint:capability:cap_capable"],
        "capability checks"
    ),
    alt!(
        ["wb_*", "writeback_*", "__writeback_*", "wb_writeback"],
        [
            "tracepoint:writeback:writeback_start",
            "tracepoint:writeback:writeback_written"
        ],
        "writeback"
    ),
    alt!(
        ["do_mmap", "vm_mmap*", "mmap_region"],
        ["tracepoint:syscalls:sys_enter_mmap"],
        "memory mappings"
    ),
    alt!(
        ["__fput", "filp_close", "__close_fd", "close_fd"],
        ["tracepoint:syscalls:sys_enter_close"],
        "closed files"
    ),
    alt!(
        [
            "mutex_lock*",
            "mutex_unlock",
            "down_read*",
            "down_write*",
            "*_spin_lock*"
        ],
        [
            "tracepoint:lock:contention_begin",
            "tracepoint:lock:contention_end"
        ],
        "lock contention"
    ),
];

/// Hardware events and the software events that sample the same way
/// (`hardware:EVENT:N` -> `software:EVENT:N`); events without a software
/// counterpart (cache misses, branches) have none.
pub(crate) const HARDWARE_ALTERNATIVES: &[(&[&str], &str)] = &[(
    &[
        "cpu-cycles",
        "cycles",
        "ref-cycles",
        "bus-cycles",
        "instructions",
    ],
    "cpu-clock",
)];

/// Prefixes of the kernel's system call entry points (`__x64_sys_openat`).
pub(crate) const SYSCALL_PREFIXES: &[&str] = &[
    "__x64_sys_",
    "__arm64_sys_",
    "__ia32_sys_",
    "__s390x_sys_",
    "__riscv_sys_",
    "__se_sys_",
    "__do_sys_",
    "ksys_",
    "sys_",
];

/// Entries whose function patterns cover `function` (itself perhaps a
/// pattern, matched literally: `vfs_*` is covered by `vfs_*`).
pub(crate) fn entries_for(
    function: &str,
) -> impl Iterator<Item = &'static FunctionAlternatives> + '_ {
    FUNCTION_ALTERNATIVES.iter().filter(move |e| {
        e.functions
            .iter()
            .any(|f| crate::facts::wildcard_match(f, function))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_well_formed() {
        for e in FUNCTION_ALTERNATIVES {
            assert!(!e.functions.is_empty() && !e.probes.is_empty());
            for p in e.probes {
                let provider = p.split(':').next().unwrap_or_default();
                assert!(
                    matches!(provider, "tracepoint" | "software"),
                    "{p}: alternatives are probes that need no kprobes"
                );
            }
        }
    }

    #[test]
    fn lookups() {
        let probes = |f: &str| -> Vec<&str> {
            entries_for(f)
                .flat_map(|e| e.probes.iter().copied())
                .collect()
        };
        assert_eq!(
            probes("tcp_connect")[0],
            "tracepoint:sock:inet_sock_set_state"
        );
        assert!(probes("tcp_retransmit_skb").contains(&"tracepoint:tcp:*"));
        assert_eq!(probes("vfs_read")[0], "tracepoint:syscalls:sys_enter_read");
        assert_eq!(probes("vfs_*"), ["tracepoint:raw_syscalls:sys_enter"]);
        assert!(probes("blk_account_io_start").contains(&"tracepoint:block:block_rq_issue"));
        assert!(probes("finish_task_switch.isra.0")[0].starts_with("tracepoint:sched:"));
        assert!(probes("no_such_function").is_empty());
    }
}
