// c10d process groups for data-parallel training (crates/ganlab/src/dist): a TCPStore
// rendezvous (torchrun's MASTER_ADDR/MASTER_PORT: rank 0 serves it) and libtorch's own
// ProcessGroupGloo, driven through the wheel's headers. Gloo's headers are not in the wheel:
// they come from Debian's libgloo-dev (scripts/setup-libtorch), and only declare types that
// ProcessGroupGloo holds by pointer; sizeof(ProcessGroupGloo) and sizeof(Options) compiled
// here equal the sizes libtorch_cpu allocates (0x1e8 and 0xb8, read off its `split` and
// `Options::create_default`; docs/DISTRIBUTED.md). Errors come back as a malloc'ed message
// and a failure value; nothing throws across the C boundary.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

static_assert(sizeof(c10d::ProcessGroupGloo) == 0x1e8,
              "ProcessGroupGloo's layout differs from the one libtorch 2.13 was built with");
static_assert(sizeof(c10d::ProcessGroupGloo::Options) == 0xb8,
              "ProcessGroupGloo::Options' layout differs from the one libtorch 2.13 was built with");

namespace {
struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
};

template <typename F> int guarded(char **error, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception &e) {
    *error = strdup(e.what());
    return -1;
  }
}
} // namespace

// Joins the group of `world` ranks whose rank 0 serves the store at addr:port. `iface`
// (may be empty) names the network interface Gloo uses (GLOO_SOCKET_IFNAME); without it,
// the address the store is reached on when that is a loopback one, else this host's name.
extern "C" void *ganlab_dist_new(const char *addr, int port, int rank, int world,
                                 const char *iface, long timeout_ms, char **error) {
  Group *group = nullptr;
  guarded(error, [&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<uint16_t>(port);
    opts.isServer = rank == 0;
    opts.numWorkers = world;
    opts.waitWorkers = true;
    opts.timeout = timeout;
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(addr), opts);
    auto gopts = c10d::ProcessGroupGloo::Options::create();
    gopts->timeout = timeout;
    std::string host(addr);
    if (iface[0] != '\0') {
      gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
    } else if (host.rfind("127.", 0) == 0 || host == "localhost") {
      gopts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
    } else {
      gopts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, gopts);
    group = new Group{store, backend};
  });
  return group;
}

extern "C" void ganlab_dist_free(void *group) { delete static_cast<Group *>(group); }

// Sums `t` over the ranks in place (one collective).
extern "C" int ganlab_dist_all_reduce_sum(void *group, at::Tensor *t, char **error) {
  return guarded(error, [&] {
    std::vector<at::Tensor> ts{*t};
    static_cast<Group *>(group)->backend->allreduce(ts)->wait();
  });
}

// Copies rank `root`'s `t` to every rank in place.
extern "C" int ganlab_dist_broadcast(void *group, at::Tensor *t, int root, char **error) {
  return guarded(error, [&] {
    std::vector<at::Tensor> ts{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    static_cast<Group *>(group)->backend->broadcast(ts, opts)->wait();
  });
}

extern "C" int ganlab_dist_barrier(void *group, char **error) {
  return guarded(error, [&] { static_cast<Group *>(group)->backend->barrier()->wait(); });
}
