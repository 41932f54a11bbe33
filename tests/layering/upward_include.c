/* Must NOT compile: a core file reaching up for a daemon header. The
 * layering test builds this with the core library's include path and
 * passes only when the compiler cannot find agent.h (CMakeLists.txt,
 * "the layers"). */
#include "meshvisor/fo.h"
#include "agent.h"

int layering_upward_include(void);
int layering_upward_include(void)
{
	return 0;
}
