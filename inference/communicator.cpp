#include "infield/inference/communicator.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string_view>
#include <tuple>
#include <cstdlib>
#include <numeric>

#include "infield/error.h"

#if INFIELD_WITH_MPI
#include <mpi.h>
#endif

namespace infield {

struct Communicator::Impl {
#if INFIELD_WITH_MPI
  MPI_Comm comm = MPI_COMM_NULL;
#endif
};

#if INFIELD_WITH_MPI
namespace {
bool session_active = false;

/// Launchers announce the job in the environment: Open MPI's mpirun, PMIx (srun --mpi=pmix,
/// prterun), PMI-1/2 (MPICH's hydra, srun --mpi=pmi2).
bool started_by_launcher() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}
}  // namespace
#endif

Communicator::Communicator() = default;

Communicator Communicator::world() {
  Communicator c;
#if INFIELD_WITH_MPI
  if (session_active) {
    auto impl = std::make_shared<Impl>();
    impl->comm = MPI_COMM_WORLD;
    MPI_Comm_rank(impl->comm, &c.rank_);
    MPI_Comm_size(impl->comm, &c.size_);
    c.impl_ = std::move(impl);
  }
#endif
  return c;
}

double Communicator::sum(double local) const {
  Eigen::VectorXd v = Eigen::VectorXd::Constant(1, local);
  sum_in_place(v);
  return v[0];
}

std::int64_t Communicator::sum(std::int64_t local) const {
#if INFIELD_WITH_MPI
  if (size_ > 1) {
    std::int64_t total = 0;
    MPI_Allreduce(&local, &total, 1, MPI_INT64_T, MPI_SUM, impl_->comm);  // exact: integers
    return total;
  }
#endif
  return local;
}

void Communicator::sum_in_place(Eigen::VectorXd& values) const {
#if INFIELD_WITH_MPI
  if (size_ > 1) {
    // Gather every rank's partial sums and add them in rank order on every rank: MPI_Allreduce
    // leaves the order (and so the rounding) to the implementation.
    const int n = static_cast<int>(values.size());
    std::vector<double> all(static_cast<std::size_t>(n) * size_);
    MPI_Allgather(values.data(), n, MPI_DOUBLE, all.data(), n, MPI_DOUBLE, impl_->comm);
    values = Eigen::Map<const Eigen::VectorXd>(all.data(), n);
    for (int r = 1; r < size_; ++r)
      values += Eigen::Map<const Eigen::VectorXd>(all.data() + static_cast<std::size_t>(r) * n, n);
  }
#else
  (void)values;
#endif
}

bool Communicator::any(bool flag) const {
  return sum(static_cast<std::int64_t>(flag ? 1 : 0)) > 0;
}

namespace {
/// Checks every vector of `local` against `length` (the caller's name in the message).
void check_gather_lengths(const std::vector<Eigen::VectorXd>& local, Eigen::Index length,
                          std::string_view fn) {
  for (const auto& v : local)
    check_argument(v.size() == length, fn, "local",
                   "has a vector of size " + std::to_string(v.size()) + ", expected " +
                       std::to_string(length));
}

#if INFIELD_WITH_MPI
/// all_gather (root < 0) or gather to `root`: the vectors of every rank in rank order, on every
/// rank or on the root alone (empty elsewhere).
std::vector<Eigen::VectorXd> gather_vectors(MPI_Comm comm, int rank, int size,
                                            const std::vector<Eigen::VectorXd>& local,
                                            Eigen::Index length, int root, std::string_view fn) {
  const bool everywhere = root < 0;
  const int mine = static_cast<int>(local.size());
  std::vector<int> counts(size);
  if (everywhere)
    MPI_Allgather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  else
    MPI_Gather(&mine, 1, MPI_INT, counts.data(), 1, MPI_INT, root, comm);
  const bool receives = everywhere || rank == root;
  std::vector<double> send(static_cast<std::size_t>(mine) * length);
  for (int i = 0; i < mine; ++i)
    Eigen::Map<Eigen::VectorXd>(send.data() + static_cast<std::size_t>(i) * length, length) =
        local[i];
  // Counts of doubles per rank; MPI counts are int, so the whole must stay below 2^31 values.
  std::vector<int> doubles(size), offsets(size);
  long long total = 0;
  bool fits = true;
  if (receives)
    for (int r = 0; r < size; ++r) {
      const long long n = static_cast<long long>(counts[r]) * length;
      fits = fits && n < (1ll << 31) && total + n < (1ll << 31);
      doubles[r] = fits ? static_cast<int>(n) : 0;
      offsets[r] = fits ? static_cast<int>(total) : 0;
      total += n;
    }
  // Every rank of an all-gather sees every count and decides alike; of a gather only the root
  // does, and tells the others: a root that gave up alone would leave them in the collective.
  int all_fit = fits ? 1 : 0;
  if (!everywhere) MPI_Bcast(&all_fit, 1, MPI_INT, root, comm);
  check_argument(all_fit == 1, fn, "local", "is too large for one MPI message (2^31 values)");
  std::vector<double> all(receives ? static_cast<std::size_t>(total) : 0);
  if (everywhere)
    MPI_Allgatherv(send.data(), mine * static_cast<int>(length), MPI_DOUBLE, all.data(),
                   doubles.data(), offsets.data(), MPI_DOUBLE, comm);
  else
    MPI_Gatherv(send.data(), mine * static_cast<int>(length), MPI_DOUBLE, all.data(),
                doubles.data(), offsets.data(), MPI_DOUBLE, root, comm);
  if (!receives) return {};
  std::vector<Eigen::VectorXd> out(std::accumulate(counts.begin(), counts.end(), std::size_t{0}));
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = Eigen::Map<const Eigen::VectorXd>(all.data() + i * length, length);
  return out;
}
#endif
}  // namespace

std::vector<Eigen::VectorXd> Communicator::all_gather(const std::vector<Eigen::VectorXd>& local,
                                                      Eigen::Index length) const {
  constexpr std::string_view fn = "Communicator::all_gather";
  check_gather_lengths(local, length, fn);
#if INFIELD_WITH_MPI
  if (size_ > 1) return gather_vectors(impl_->comm, rank_, size_, local, length, -1, fn);
#endif
  return local;
}

std::vector<Eigen::VectorXd> Communicator::gather(const std::vector<Eigen::VectorXd>& local,
                                                  Eigen::Index length, int root) const {
  constexpr std::string_view fn = "Communicator::gather";
  check_gather_lengths(local, length, fn);
  check_argument(root >= 0 && root < size_, fn, "root",
                 "must be a rank of the communicator (0 to " + std::to_string(size_ - 1) + ")");
#if INFIELD_WITH_MPI
  if (size_ > 1) return gather_vectors(impl_->comm, rank_, size_, local, length, root, fn);
#endif
  return local;
}

void Communicator::broadcast(std::string& bytes, int root) const {
#if INFIELD_WITH_MPI
  if (size_ > 1) {
    unsigned long long n = bytes.size();
    MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, root, impl_->comm);
    bytes.resize(n);
    // In pieces: an MPI count is an int.
    constexpr unsigned long long kPiece = 1ull << 30;
    for (unsigned long long done = 0; done < n; done += kPiece)
      MPI_Bcast(bytes.data() + done, static_cast<int>(std::min(kPiece, n - done)), MPI_CHAR, root,
                impl_->comm);
  }
#else
  (void)bytes;
  (void)root;
#endif
}

void Communicator::barrier() const {
#if INFIELD_WITH_MPI
  if (size_ > 1) MPI_Barrier(impl_->comm);
#endif
}

std::pair<int, int> Communicator::share(int count) const {
  check_argument(count >= 0, "Communicator::share", "count", "must be >= 0");
  // NIFTy's shareRange: the first count % size ranks get one item more.
  const int base = count / size_, extra = count % size_;
  const int begin = rank_ * base + std::min(rank_, extra);
  return {begin, begin + base + (rank_ < extra ? 1 : 0)};
}

namespace {

/// The tree of tree_sum: node [lo, hi) = [lo, mid) + [mid, hi), mid = (lo + hi) / 2.
class TreeReduction {
 public:
  TreeReduction(const Communicator& communicator, const std::vector<Eigen::VectorXd>& local,
                int count, Eigen::Index length, const void* comm)
      : communicator_(communicator), local_(local), count_(count), length_(length), comm_(comm) {
    std::tie(begin_, end_) = communicator.share(count);
  }

  /// The node's sum on the rank owning item `lo` (empty elsewhere).
  Eigen::VectorXd node(int lo, int hi) const {
    if (hi <= begin_ || lo >= end_) return {};  // no item of this rank below
    if (hi - lo == 1) return local_[lo - begin_];
    const int mid = lo + (hi - lo) / 2;
    Eigen::VectorXd left = node(lo, mid);
    Eigen::VectorXd right = node(mid, hi);
    const int node_owner = owner(lo), right_owner = owner(mid);
    const int me = communicator_.rank();
    if (node_owner == right_owner) return me == node_owner ? Eigen::VectorXd(left + right) : left;
#if INFIELD_WITH_MPI
    const auto comm = *static_cast<const MPI_Comm*>(comm_);
    const int tag = static_cast<int>((static_cast<long long>(lo) * (count_ + 1) + hi) % 32767);
    if (me == right_owner) {
      MPI_Send(right.data(), static_cast<int>(length_), MPI_DOUBLE, node_owner, tag, comm);
      return {};
    }
    if (me == node_owner) {
      right.resize(length_);
      MPI_Recv(right.data(), static_cast<int>(length_), MPI_DOUBLE, right_owner, tag, comm,
               MPI_STATUS_IGNORE);
      return left + right;
    }
#endif
    return {};
  }

 private:
  /// The rank whose share holds item i (inverse of Communicator::share).
  int owner(int i) const {
    const int size = communicator_.size(), base = count_ / size, extra = count_ % size;
    const int big = extra * (base + 1);  // items of the ranks with one more
    return i < big ? i / (base + 1) : extra + (i - big) / base;
  }

  const Communicator& communicator_;
  const std::vector<Eigen::VectorXd>& local_;
  int count_;
  Eigen::Index length_;
  const void* comm_;
  int begin_ = 0, end_ = 0;
};

}  // namespace

Eigen::VectorXd Communicator::tree_sum(const std::vector<Eigen::VectorXd>& local, int count,
                                       Eigen::Index length) const {
  constexpr std::string_view fn = "Communicator::tree_sum";
  const auto [begin, end] = share(count);
  check_argument(static_cast<int>(local.size()) == end - begin, fn, "local",
                 "has " + std::to_string(local.size()) + " items, this rank's share is " +
                     std::to_string(end - begin));
  for (const auto& v : local)
    check_argument(v.size() == length, fn, "local", "has an item of another length");
  if (count == 0) return Eigen::VectorXd::Zero(length);
  const void* comm = nullptr;
#if INFIELD_WITH_MPI
  if (impl_) comm = &impl_->comm;
  check_argument(size_ == 1 || length < (Eigen::Index{1} << 31), fn, "length",
                 "is too large for one MPI message (2^31 values)");
#endif
  Eigen::VectorXd sum = TreeReduction(*this, local, count, length, comm).node(0, count);
#if INFIELD_WITH_MPI
  if (size_ > 1) {
    sum.resize(length);  // the root (owner of item 0) holds it; the others receive it
    MPI_Bcast(sum.data(), static_cast<int>(length), MPI_DOUBLE, 0, impl_->comm);
  }
#endif
  return sum;
}

void Communicator::abort(int code) const {
#if INFIELD_WITH_MPI
  if (impl_) MPI_Abort(impl_->comm, code);
#endif
  std::exit(code);
}

// ------------------------------------------------------------------------ ShardedReduction

#if INFIELD_WITH_MPI
namespace {

constexpr std::size_t kCacheLine = 64;

/// The first cache-line boundary at or after `p`.
float* cache_aligned(float* p) {
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  return reinterpret_cast<float*>((address + kCacheLine - 1) / kCacheLine * kCacheLine);
}

}  // namespace
#endif

struct ShardedReduction::Impl {
  /// std::uncaught_exceptions() at construction: a destructor run by an exception on this rank
  /// alone must not free the windows (a collective the other ranks never join); the program is
  /// about to end every rank anyway.
  int uncaught_at_construction = 0;
#if INFIELD_WITH_MPI
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm node = MPI_COMM_NULL;  ///< all ranks, when they share one machine
  MPI_Win contributions = MPI_WIN_NULL;
  float* own_slot = nullptr;
  std::vector<const float*> slots;  ///< every rank's contribution, in rank order
  std::vector<int> counts, offsets;  ///< every rank's shard

  /// The barrier that orders one side's accesses to shared memory before the other's (writes
  /// before the other ranks' reads, and reads before their next writes), with the memory
  /// synchronisation the MPI memory model asks for on both sides of it.
  void fence(MPI_Win window) const {
    MPI_Win_sync(window);
    MPI_Barrier(node);
    MPI_Win_sync(window);
  }
#endif
};

ShardedReduction::ShardedReduction(const Communicator& communicator, Eigen::Index length,
                                   Transport transport)
    : impl_(std::make_unique<Impl>()), length_(length) {
  constexpr std::string_view fn = "ShardedReduction";
  constexpr Eigen::Index kBlock = 16;  // shards start on 64-byte boundaries
  check_argument(length >= 0, fn, "length", "must be >= 0");
  const Eigen::Index blocks = (length + kBlock - 1) / kBlock;
  check_argument(blocks < (Eigen::Index{1} << 31) &&
                     (communicator.size() == 1 || length < (Eigen::Index{1} << 31)),
                 fn, "length", "is too large for one MPI message (2^31 values)");
  const auto [first, end] = communicator.share(static_cast<int>(blocks));
  shard_begin_ = std::min(first * kBlock, length);
  shard_end_ = std::min(end * kBlock, length);
  impl_->uncaught_at_construction = std::uncaught_exceptions();
  (void)transport;
#if INFIELD_WITH_MPI
  if (communicator.size() == 1) return;
  Impl& m = *impl_;
  m.comm = communicator.impl_->comm;
  const int size = communicator.size(), rank = communicator.rank();
  MPI_Comm node = MPI_COMM_NULL;
  MPI_Comm_split_type(m.comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node);
  int node_size = 0;
  MPI_Comm_size(node, &node_size);
  // One machine (the same answer on every rank): through shared memory.
  if (node_size == size && transport == Transport::kAutomatic) {
    m.node = node;
    MPI_Info info;
    MPI_Info_create(&info);
    MPI_Info_set(info, "alloc_shared_noncontig", "true");  // each slot in its rank's memory
    // Open MPI places a window's memory 8 bytes past a cache line: each vector starts at the
    // first cache line inside it, so that shards fall on cache lines and Eigen's vectorised
    // loops peel alike on every rank and in one process (their rounding depends on alignment).
    // Each rank finds that offset in its own mapping and tells the others (theirs may differ).
    const auto bytes = static_cast<MPI_Aint>(length * sizeof(float) + kCacheLine);
    float* base = nullptr;
    MPI_Win_allocate_shared(bytes, sizeof(float), info, node, &base, &m.contributions);
    m.own_slot = cache_aligned(base);
    MPI_Info_free(&info);
    const int own_pad = static_cast<int>(m.own_slot - base);
    std::vector<int> pads(static_cast<std::size_t>(size));
    MPI_Allgather(&own_pad, 1, MPI_INT, pads.data(), 1, MPI_INT, node);
    for (int r = 0; r < size; ++r) {
      MPI_Aint queried = 0;
      int unit = 0;
      float* slot = nullptr;
      MPI_Win_shared_query(m.contributions, r, &queried, &unit, &slot);
      m.slots.push_back(slot + pads[static_cast<std::size_t>(r)]);
    }
    MPI_Win_lock_all(MPI_MODE_NOCHECK, m.contributions);
  } else {  // several machines: MPI's own collectives
    MPI_Comm_free(&node);
  }
  m.counts.resize(size);
  m.offsets.resize(size);
  const long long mine[2] = {shard_begin_, shard_end_ - shard_begin_};
  std::vector<long long> all(2 * static_cast<std::size_t>(size));
  MPI_Allgather(mine, 2, MPI_LONG_LONG, all.data(), 2, MPI_LONG_LONG, m.comm);
  for (int r = 0; r < size; ++r) {
    m.offsets[r] = static_cast<int>(all[2 * r]);
    m.counts[r] = static_cast<int>(all[2 * r + 1]);
  }
#endif
}

ShardedReduction::~ShardedReduction() {
  if (impl_ && std::uncaught_exceptions() > impl_->uncaught_at_construction) return;  // see Impl
  release();
}

void ShardedReduction::release() {
#if INFIELD_WITH_MPI
  if (!impl_ || impl_->node == MPI_COMM_NULL) return;
  MPI_Win_unlock_all(impl_->contributions);
  MPI_Win_free(&impl_->contributions);
  MPI_Comm_free(&impl_->node);
  impl_->node = MPI_COMM_NULL;
  impl_->own_slot = nullptr;
  impl_->slots.clear();
  impl_->comm = MPI_COMM_NULL;  // no exchange after release
#endif
}

bool ShardedReduction::shared_memory() const {
#if INFIELD_WITH_MPI
  return impl_->node != MPI_COMM_NULL;
#else
  return false;
#endif
}

float* ShardedReduction::contribution_buffer() {
#if INFIELD_WITH_MPI
  return impl_->own_slot;
#else
  return nullptr;
#endif
}

void ShardedReduction::reduce_scatter(const float* contribution, float* shard_sum) {
  reduce_scatter(contribution, [&](Eigen::Index offset, const float* sum, Eigen::Index size) {
    std::copy_n(sum, size, shard_sum + (offset - shard_begin_));
  });
}

void ShardedReduction::reduce_scatter(const float* contribution, const ShardConsumer& consume) {
#if INFIELD_WITH_MPI
  const Impl& m = *impl_;
  if (m.node != MPI_COMM_NULL) {
    if (contribution != m.own_slot) std::copy_n(contribution, length_, m.own_slot);
    m.fence(m.contributions);
    constexpr Eigen::Index kPiece = 8192;  // 32 KiB: the sum and its consumer's arrays in L2
    float sum[kPiece];
    for (Eigen::Index start = shard_begin_; start < shard_end_; start += kPiece) {
      const Eigen::Index n = std::min(kPiece, shard_end_ - start);
      Eigen::Map<Eigen::VectorXf> piece(sum, n);
      piece = Eigen::Map<const Eigen::VectorXf>(m.slots[0] + start, n);
      for (std::size_t r = 1; r < m.slots.size(); ++r)
        piece += Eigen::Map<const Eigen::VectorXf>(m.slots[r] + start, n);
      consume(start, sum, n);
    }
    // No rank may overwrite its slot (the next call) before every owner has read its shard.
    m.fence(m.contributions);
    return;
  }
  if (m.comm != MPI_COMM_NULL) {
    std::vector<float> shard(static_cast<std::size_t>(shard_size()));
    MPI_Reduce_scatter(contribution, shard.data(), m.counts.data(), MPI_FLOAT, MPI_SUM, m.comm);
    if (!shard.empty()) consume(shard_begin_, shard.data(), shard_size());
    return;
  }
#endif
  // One process: the shard is the whole vector, its sum the contribution itself.
  if (shard_size() > 0) consume(shard_begin_, contribution + shard_begin_, shard_size());
}

void ShardedReduction::all_gather(float* full) {
#if INFIELD_WITH_MPI
  const Impl& m = *impl_;
  if (m.node != MPI_COMM_NULL) {
    // Through the contribution slots: each rank's shard at its place in its own slot, read from
    // there by the others.
    std::copy_n(full + shard_begin_, shard_size(), m.own_slot + shard_begin_);
    m.fence(m.contributions);
    for (std::size_t r = 0; r < m.slots.size(); ++r)
      if (m.slots[r] != m.own_slot)
        std::copy_n(m.slots[r] + m.offsets[r], m.counts[r], full + m.offsets[r]);
    m.fence(m.contributions);  // every rank has read the slots before they are written again
    return;
  }
  if (m.comm != MPI_COMM_NULL)
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, full, m.counts.data(), m.offsets.data(),
                   MPI_FLOAT, m.comm);
#else
  (void)full;
#endif
}

MpiSession::MpiSession(int* argc, char*** argv) {
#if INFIELD_WITH_MPI
  if (session_active || !started_by_launcher()) return;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized != 0) {  // started by another library (mpi4py): used, left to it to finalise
    session_active = true;
    return;
  }
  // All ranks on this machine (Open MPI's launcher says so): its ob1 messaging over the
  // shared-memory BTL is what serves; the default UCX layer spends 0.2 s probing networks at start
  // and was slower here (cf2d-256 on 2 ranks 7.8 s against 7.4 s). An OMPI_MCA_pml the user set
  // wins; runs over several machines keep Open MPI's own choice.
  const char* world_size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* local_size = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  if (world_size != nullptr && local_size != nullptr && std::string_view(world_size) == local_size)
    ::setenv("OMPI_MCA_pml", "ob1", /*overwrite=*/0);
  int provided = 0;
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  active_ = session_active = true;
#else
  (void)argc;
  (void)argv;
#endif
}

MpiSession::~MpiSession() {
#if INFIELD_WITH_MPI
  if (active_) {
    MPI_Finalize();
    session_active = false;
  }
#endif
}

bool MpiSession::supported() {
#if INFIELD_WITH_MPI
  return true;
#else
  return false;
#endif
}

}  // namespace infield
