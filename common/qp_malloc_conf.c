/* jemalloc's settings for the services and partner components (qp_program in
 * CMakeLists.txt), read once at start; MALLOC_CONF in the environment comes after them.
 * One arena: a program has one thread that allocates, besides ZeroMQ's I/O thread, and
 * jemalloc would otherwise make four per core, each keeping its own free pages. */
const char *malloc_conf = "narenas:1";
