#include "json_output.h"

#include <fstream>
#include <string>

#include "infield/error.h"

namespace infield::apps {

void write_json_atomic(const std::filesystem::path& path, const nlohmann::json& json,
                       std::string_view command) {
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream file(tmp);
    file << json.dump(2) << '\n';
    file.close();
    if (!file) throw FileError(std::string(command) + ": cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace infield::apps
