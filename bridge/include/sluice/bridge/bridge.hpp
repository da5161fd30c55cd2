#pragma once

// The bridge between Asio coroutines and blocking code: sync_to_async, async_to_sync, thread pools and scopes.

#include "sluice/bridge/async_to_sync.hpp"
#include "sluice/bridge/error.hpp"
#include "sluice/bridge/stats.hpp"
#include "sluice/bridge/sync_to_async.hpp"
#include "sluice/bridge/thread_pool.hpp"
