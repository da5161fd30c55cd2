// Entry point of integration_tests: one PostgreSQL cluster for the whole run, and the sluice binary built with it.
#include <cstdlib>

#include <gtest/gtest.h>

#include "pg_cluster.hpp"

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);
#ifdef SLUICE_BINARY
    // sluice_process reads the environment; an explicit SLUICE_BINARY wins over the one built alongside.
    ::setenv("SLUICE_BINARY", SLUICE_BINARY, 0);
#endif
    ::testing::AddGlobalTestEnvironment(new sluice::test::postgres_environment);
    return RUN_ALL_TESTS();
}
