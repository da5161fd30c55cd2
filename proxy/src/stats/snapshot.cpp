#include "stats/snapshot.hpp"

#include <algorithm>

namespace sluice::stats {

namespace {
void add_histogram(histogram_snapshot& into, const histogram_snapshot& from) {
    for (std::size_t i = 0; i < into.buckets.size(); ++i)
        into.buckets[i] += from.buckets[i];
    into.count += from.count;
    into.sum_us += from.sum_us;
}
}  // namespace

void merge_pool_row(pool_row& into, const pool_row& from) {
    into.cl_active += from.cl_active;
    into.cl_waiting += from.cl_waiting;
    into.cl_idle += from.cl_idle;
    into.cl_pinned += from.cl_pinned;
    into.cl_listening += from.cl_listening;
    into.cl_active_cancel_req += from.cl_active_cancel_req;
    into.cl_waiting_cancel_req += from.cl_waiting_cancel_req;
    into.sv_active += from.sv_active;
    into.sv_active_cancel += from.sv_active_cancel;
    into.sv_being_canceled += from.sv_being_canceled;
    into.sv_idle += from.sv_idle;
    into.sv_used += from.sv_used;
    into.sv_tested += from.sv_tested;
    into.sv_login += from.sv_login;
    into.maxwait_us = std::max(into.maxwait_us, from.maxwait_us);
    into.oldest_xact_us = std::max(into.oldest_xact_us, from.oldest_xact_us);
    into.oldest_idle_in_xact_us = std::max(into.oldest_idle_in_xact_us, from.oldest_idle_in_xact_us);
#define SLUICE_MERGE_TOTAL(name, help) into.totals.name += from.totals.name;
    SLUICE_POOL_COUNTERS(SLUICE_MERGE_TOTAL)
#undef SLUICE_MERGE_TOTAL
    add_histogram(into.wait_time, from.wait_time);
    add_histogram(into.xact_time, from.xact_time);
    add_histogram(into.query_time, from.query_time);
    add_histogram(into.connect_time, from.connect_time);
}

}  // namespace sluice::stats
